"""Notifications store."""

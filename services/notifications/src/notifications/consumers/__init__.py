"""Notifications consumers."""

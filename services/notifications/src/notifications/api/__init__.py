"""Notifications api."""

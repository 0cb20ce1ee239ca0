"""Persistence of the reports service."""

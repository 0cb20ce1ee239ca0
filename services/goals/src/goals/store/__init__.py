"""Ports and adapters of the goals service's storage."""

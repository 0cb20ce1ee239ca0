"""The reports HTTP API."""

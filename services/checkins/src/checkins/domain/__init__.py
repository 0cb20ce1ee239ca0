"""The checkins domain: check-in rules and the read model (pure, no I/O)."""

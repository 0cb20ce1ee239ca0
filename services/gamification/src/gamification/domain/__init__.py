"""Pure gamification rules: levels, the badge catalogue and the XP fold (no I/O)."""

"""MandaAct notifications: what to tell a user and when (SPEC §8)."""

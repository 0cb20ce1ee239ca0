"""Mechanisms shared by every MandaAct service (one implementation, not four copies)."""

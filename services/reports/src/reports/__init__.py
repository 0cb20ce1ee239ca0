"""MandaAct reports: weekly folds of every user's events and AI-written weekly reports."""

"""MandaAct webhooks service."""

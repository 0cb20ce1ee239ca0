"""MandaAct checkins service: the daily checklist and check-ins."""

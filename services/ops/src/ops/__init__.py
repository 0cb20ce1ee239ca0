"""MandaAct ops: operators' overview, dead letters, live events and the web console."""

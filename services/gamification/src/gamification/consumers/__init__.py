"""Gamification's Kafka consumers (thin: they hand batches to the service layer)."""

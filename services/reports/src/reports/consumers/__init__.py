"""Reports' Kafka consumer (thin: it hands batches to the fold use case)."""

"""Reports' worker edges (thin): the Kafka batch handler and the report scheduler loop."""

"""`make bench`: throughput figures, each printed next to its same-run baseline."""

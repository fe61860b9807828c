"""Fault-injection proof: the chaos harness (`scripts/chaos`, `python -m tests.chaos`)."""

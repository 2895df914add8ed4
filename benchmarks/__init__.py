"""Benchmark harness: scenarios, baselines, JSON results and a printed table."""

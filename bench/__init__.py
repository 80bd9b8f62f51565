"""Benchmarks of the app's pipeline (``python -m bench.pipeline``)."""

"""Benchmarks (not timed tests): ``python -m si.bench env`` and ``python -m si.bench train``."""

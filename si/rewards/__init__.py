"""Reward terms of Jaques et al. (2019): influence divergences (Eq 1-7) and social baselines.

Pure tensor functions; this package imports only ``torch`` and ``math`` (and ``si.metrics``).
"""

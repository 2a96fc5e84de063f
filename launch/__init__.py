"""Hydra entry point (``launch/main.py``) and the checks it runs before launching jobs."""

"""Hydra plugins of this project (Hydra loads launchers from the hydra_plugins package only)."""

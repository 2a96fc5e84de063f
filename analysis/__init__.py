"""Regenerate the paper's tables and figures from Hydra job folders.

Reads only what runs write (`.hydra/config.yaml`, `metrics.csv`, `summary.json`, `eval/*.csv`);
never imports the training code. Entry point: `python -m analysis <sweep_dir>... --out <dir>`,
documented in docs/analysis.md.
"""

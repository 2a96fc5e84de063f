"""Social influence as intrinsic motivation in multi-agent RL (Jaques et al., ICML 2019)."""

__version__ = "0.1.0"

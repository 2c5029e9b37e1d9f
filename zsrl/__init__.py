"""zsrl: zero-shot reinforcement learning from low-quality data (FB, VC-FB, MC-FB and baselines)."""

__version__ = "0.1.0"

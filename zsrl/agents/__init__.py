"""Agents: the update rules that train models. One module per method family."""

from zsrl.agents.fb import Batch, FBAgent

__all__ = ["Batch", "FBAgent"]

"""Agents: the update rules that train models. One module per method family."""

from zsrl.agents.cfb import ConservativeFBAgent
from zsrl.agents.fb import Batch, FBAgent
from zsrl.config import CONSERVATIVE_METHODS, METHODS, FBConfig
from zsrl.model import FBModel


def make_agent(method: str, model: FBModel, cfg: FBConfig) -> FBAgent:
    """The agent that trains ``model`` by ``method`` (fb, vcfb, mcfb or dvcfb)."""
    if method == "fb":
        return FBAgent(model, cfg)
    if method in CONSERVATIVE_METHODS:
        return ConservativeFBAgent(model, cfg, method)
    raise ValueError(f"unknown method {method!r}; valid methods: {list(METHODS)}")


__all__ = ["Batch", "ConservativeFBAgent", "FBAgent", "make_agent"]

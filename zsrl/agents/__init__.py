"""Agents: the update rules that train models. One module per method family."""

from __future__ import annotations

from typing import Any

import torch

from zsrl.agents.base import Agent, Batch, TrainingData
from zsrl.agents.cfb import ConservativeFBAgent
from zsrl.agents.fb import FBAgent


def build_agent(
    method: str, cfg: Any, obs_dim: int, action_dim: int, device: torch.device | str = "cpu"
) -> Agent:
    """A fresh model for ``method`` on ``device`` and the agent that trains it, as the method's
    declaration (:mod:`zsrl.methods`) builds them."""
    from zsrl.methods import get_method

    spec = get_method(method)
    if not isinstance(cfg, spec.config):
        raise ValueError(
            f"method {method!r} takes a {spec.config.__name__}, got {type(cfg).__name__}"
        )
    return spec.build(cfg, obs_dim, action_dim, device)


__all__ = [
    "Agent",
    "Batch",
    "ConservativeFBAgent",
    "FBAgent",
    "TrainingData",
    "build_agent",
]

"""Agents: the update rules that train models. One module per method family."""

from __future__ import annotations

import importlib

import torch

from zsrl.agents.base import Agent, Batch, TrainingData
from zsrl.agents.cfb import ConservativeFBAgent
from zsrl.agents.fb import FBAgent
from zsrl.config import AGENT_CONFIGS, CONSERVATIVE_METHODS, FB_METHODS, METHODS, FBConfig
from zsrl.model import FBModel

# The baselines: method -> (module, model class, agent class), imported when first built. The FB
# family is built by make_agent.
BASELINES: dict[str, tuple[str, str, str]] = {
    "sf-lap": ("zsrl.agents.sf", "SFModel", "SFAgent"),
    "gciql": ("zsrl.agents.gciql", "GCIQLModel", "GCIQLAgent"),
    "cql": ("zsrl.agents.cql", "CQLModel", "CQLAgent"),
    "td3": ("zsrl.agents.td3", "TD3Model", "TD3Agent"),
}


def make_agent(method: str, model: FBModel, cfg: FBConfig) -> FBAgent:
    """The agent that trains ``model`` by ``method`` (fb, vcfb, mcfb or dvcfb)."""
    if method == "fb":
        return FBAgent(model, cfg)
    if method in CONSERVATIVE_METHODS:
        return ConservativeFBAgent(model, cfg, method)
    raise ValueError(f"unknown method {method!r}; valid methods: {list(FB_METHODS)}")


def build_agent(
    method: str, cfg, obs_dim: int, action_dim: int, device: torch.device | str = "cpu"
) -> Agent:
    """A fresh model for ``method`` on ``device`` and the agent that trains it."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid methods: {list(METHODS)}")
    if not isinstance(cfg, AGENT_CONFIGS[method]):
        raise ValueError(
            f"method {method!r} takes a {AGENT_CONFIGS[method].__name__}, got {type(cfg).__name__}"
        )
    if method in FB_METHODS:
        return make_agent(method, FBModel(obs_dim, action_dim, cfg).to(device), cfg)
    module, model_class, agent_class = BASELINES[method]
    module = importlib.import_module(module)
    model = getattr(module, model_class)(obs_dim, action_dim, cfg).to(device)
    return getattr(module, agent_class)(model, cfg)


__all__ = [
    "Agent",
    "Batch",
    "ConservativeFBAgent",
    "FBAgent",
    "TrainingData",
    "build_agent",
    "make_agent",
]

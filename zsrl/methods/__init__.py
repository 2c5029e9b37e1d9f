"""The method registry: one declaration per method says everything the rest of zsrl asks about it.

A :class:`Method` names the method's agent configuration class, how to build its model and agent,
how tables label it, what data it needs, whether it learns one task or all of them, whether it has an
action value to probe, and its presets: layers of agent settings, each for a scale, a domain or both,
each with the reason it departs from the configuration class's defaults (the paper's values). The
trainer, the command line, the notebooks, the results code and the tests ask this declaration; none
of them names a method.

Each built-in method is declared in a module of this package (``fb`` holds the FB family); a new
method is one new module that calls :func:`register`, e.g. from a test or a notebook.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

# What a method may need from the data beyond (s, a, s'): rewards of its one task relabelled from
# physics states, or episodes (with steps) to draw goals from.
DATA_NEEDS = ("rewards", "episodes")
FAMILIES = ("fb", "baseline")  # how the book groups methods: the FB family, and the others


@dataclass(frozen=True)
class Preset:
    """Agent settings for runs at ``scale`` and/or on ``domain`` (None: any), with the reason.

    Keys are field names of the method's agent configuration; a nested one is dotted
    (``conservative.penalty_states``).
    """

    values: Mapping[str, Any]
    why: str
    scale: str | None = None
    domain: str | None = None

    def applies(self, domain: str, scale: str) -> bool:
        return self.scale in (None, scale) and self.domain in (None, domain)


@dataclass(frozen=True)
class Method:
    """Everything about one method, in one place."""

    name: str  # as typed on the command line: "vcfb"
    label: str  # as tables and figures print it: "VC-FB"
    config: type  # the agent configuration dataclass; its defaults are the paper's
    # (cfg, obs_dim, action_dim, device) -> a fresh model on device and the agent that trains it
    build: Callable[[Any, int, int, torch.device | str], Any]
    presets: tuple[Preset, ...] = ()  # applied in order: a later layer wins
    family: str = "baseline"
    single_task: bool = False  # learns one task from its relabelled rewards (CQL, TD3)
    # The width of the task context its Q(s, a, context) takes, for the value probe; None: the model
    # has no action value (GC-IQL's value-only critic).
    q_context_dim: Callable[[Any], int] | None = None
    needs: frozenset[str] = frozenset()
    conservative: bool = False  # has the conservative penalty's settings (``cfg.conservative``)

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown family {self.family!r}; valid choices: {list(FAMILIES)}")
        unknown = sorted(set(self.needs) - set(DATA_NEEDS))
        if unknown:
            raise ValueError(f"unknown data needs {unknown}; valid choices: {list(DATA_NEEDS)}")


_REGISTRY: dict[str, Method] = {}


def register(method: Method, replace: bool = False) -> Method:
    """Add ``method`` to the registry; a name taken by another method is an error unless ``replace``."""
    if method.name in _REGISTRY and not replace:
        raise ValueError(f"method {method.name!r} is already registered")
    _REGISTRY[method.name] = method
    return method


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def method_names(family: str | None = None) -> list[str]:
    """Registered methods in registration order (the built-ins: the FB family, then the baselines)."""
    return [m.name for m in _REGISTRY.values() if family in (None, m.family)]


def get_method(name: str) -> Method:
    if name not in _REGISTRY:
        raise ValueError(f"unknown method {name!r}; valid choices: {method_names()}")
    return _REGISTRY[name]


def model_and_agent(model_class: type, agent_class: type) -> Callable[..., Any]:
    """The ``build`` of a method whose agent takes (model, cfg) and model (obs_dim, action_dim, cfg)."""

    def build(cfg: Any, obs_dim: int, action_dim: int, device: torch.device | str = "cpu") -> Any:
        return agent_class(model_class(obs_dim, action_dim, cfg).to(device), cfg)

    return build


def task_vector_dim(cfg: Any) -> int:
    """Context width of the zero-shot methods' Q(s, a, z): d."""
    return cfg.z_dim


def no_context(cfg: Any) -> int:
    """Single-task critics take no task context; the probe passes a dummy of width 1."""
    return 1


# Every method gets the same horizon on the book-scale maze, so that no baseline loses for want of
# the longer one FB needs there.
BOOK_MAZE_HORIZON = Preset(
    dict(discount=0.995),
    "book maze: the horizon FB needs for the far goals (results/fb_maze_uniform-reset_book_gamma995/)",
    scale="book",
    domain="point_mass_maze",
)


def baseline_sizes(book: Mapping[str, Any], quick: Mapping[str, Any]) -> tuple[Preset, Preset]:
    """A baseline's network sizes and batch: FB's at book scale, tiny ones for tests at quick."""
    return (
        Preset(book, "book scale: FB's widths and batch, for a 2-core CPU", scale="book"),
        Preset(quick, "quick scale: tiny networks for tests", scale="quick"),
    )


# The built-in methods register themselves on import, in this order.
BUILT_IN = ("fb", "sf_lap", "gciql", "cql", "td3")
for _module in BUILT_IN:
    importlib.import_module(f"zsrl.methods.{_module}")

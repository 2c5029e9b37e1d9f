"""The FB family: FB, VC-FB, MC-FB and DVC-FB (reference: ref-fb, ref-conservative).

The four share FB's configuration (:class:`zsrl.config.FBConfig`), model (:class:`zsrl.model.FBModel`)
and update; the conservative three add a penalty (:class:`zsrl.agents.cfb.ConservativeFBAgent`). The
presets below hold every departure from the paper's values, each with its reason. SF-LAP has FB's
forward net and actor, so it takes the same sizes (``FORWARD_ACTOR_PRESETS``).
"""

from __future__ import annotations

from typing import Any

import torch

from zsrl.agents.cfb import ConservativeFBAgent
from zsrl.agents.fb import FBAgent
from zsrl.config import FBConfig
from zsrl.methods import Method, Preset, register, task_vector_dim
from zsrl.model import FBModel

MAZE = "point_mass_maze"

# Sizes and settings of everything FB and SF-LAP share (forward net, actor, task vectors).
FORWARD_ACTOR_PRESETS = (
    Preset(
        dict(z_dim=100, discount=0.99),
        "the paper's maze values: d 100 and γ 0.99 (reference: ref-fb-optimisation, ref-sf-lap)",
        domain=MAZE,
    ),
    Preset(
        dict(
            layernorm_input=True,  # raw observations (reference: ref-fb-architecture)
            batch_size=256,
            preprocessor_hidden=256,
            preprocessor_layers=1,
            preprocessor_out=256,
            forward_hidden=256,
            forward_layers=1,
            actor_hidden=256,
        ),
        "book scale: networks and batch sized for a 30k-update run on a 2-core CPU, with "
        "Linear→LayerNorm→Tanh first layers on raw observations",
        scale="book",
    ),
    Preset(
        dict(
            z_dim=16,
            batch_size=64,
            preprocessor_hidden=32,
            preprocessor_layers=1,
            preprocessor_out=32,
            forward_hidden=32,
            forward_layers=1,
            actor_hidden=32,
        ),
        "quick scale: tiny networks for tests",
        scale="quick",
    ),
    Preset(
        dict(discount=0.995, target_tau=0.005, lr_actor=3e-5),
        "book maze: the far goals (200-400 steps away) need a longer horizon than γ 0.99, and FB "
        "a slower target and actor to stay stable (results/fb_maze_uniform-reset_book_gamma995/)",
        scale="book",
        domain=MAZE,
    ),
)

_CONSERVATIVE_ACTOR = Preset(
    dict(lr_actor=3e-5),
    "the conservative variants train the actor more slowly (reference: "
    "ref-conservative-hyperparameters)",
)
_FB_PRESETS = (
    *FORWARD_ACTOR_PRESETS[:1],
    Preset(
        FORWARD_ACTOR_PRESETS[1].values | dict(backward_hidden=256, backward_layers=2),
        FORWARD_ACTOR_PRESETS[1].why,
        scale="book",
    ),
    Preset(
        FORWARD_ACTOR_PRESETS[2].values | dict(backward_hidden=32, backward_layers=1),
        FORWARD_ACTOR_PRESETS[2].why,
        scale="quick",
    ),
    *FORWARD_ACTOR_PRESETS[3:],
)
_CONSERVATIVE_BOOK = Preset(
    {"conservative.penalty_states": 0.25},
    "book scale: the K = 12 action samples per state cost about twice an FB update on a CPU, so "
    "the penalty is estimated on a random quarter of each batch's states",
    scale="book",
)


def _build(cfg: FBConfig, obs_dim: int, action_dim: int, device: torch.device | str) -> Any:
    return FBAgent(FBModel(obs_dim, action_dim, cfg).to(device), cfg)


def _build_conservative(penalty: str):
    def build(cfg: FBConfig, obs_dim: int, action_dim: int, device: torch.device | str) -> Any:
        return ConservativeFBAgent(FBModel(obs_dim, action_dim, cfg).to(device), cfg, penalty)

    return build


register(
    Method(
        name="fb",
        label="FB",
        config=FBConfig,
        build=_build,
        presets=_FB_PRESETS,
        family="fb",
        q_context_dim=task_vector_dim,
    )
)
for _name, _label in (("vcfb", "VC-FB"), ("mcfb", "MC-FB"), ("dvcfb", "DVC-FB")):
    register(
        Method(
            name=_name,
            label=_label,
            config=FBConfig,
            build=_build_conservative(_name),
            presets=(_CONSERVATIVE_ACTOR, *_FB_PRESETS, _CONSERVATIVE_BOOK),
            family="fb",
            q_context_dim=task_vector_dim,
            conservative=True,
        )
    )

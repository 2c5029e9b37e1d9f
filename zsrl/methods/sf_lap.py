"""SF-LAP: successor features on Laplacian features (reference: ref-sf-lap); FB's forward net and actor."""

from __future__ import annotations

from zsrl.agents.sf import SFAgent, SFModel
from zsrl.config import SFConfig
from zsrl.methods import Method, Preset, model_and_agent, register, task_vector_dim
from zsrl.methods.fb import FORWARD_ACTOR_PRESETS

_maze, _book, _quick, _book_maze = FORWARD_ACTOR_PRESETS

register(
    Method(
        name="sf-lap",
        label="SF-LAP",
        config=SFConfig,
        build=model_and_agent(SFModel, SFAgent),
        presets=(
            _maze,
            Preset(_book.values | dict(feature_hidden=256, feature_layers=2), _book.why, "book"),
            Preset(_quick.values | dict(feature_hidden=32, feature_layers=1), _quick.why, "quick"),
            _book_maze,
        ),
        q_context_dim=task_vector_dim,
    )
)

"""GC-IQL: goal-conditioned implicit Q-learning, value-only (reference: ref-gciql)."""

from __future__ import annotations

from zsrl.agents.gciql import GCIQLAgent, GCIQLModel
from zsrl.config import GCIQLConfig
from zsrl.methods import (
    BOOK_MAZE_HORIZON,
    Method,
    baseline_sizes,
    model_and_agent,
    register,
)

register(
    Method(
        name="gciql",
        label="GC-IQL",
        config=GCIQLConfig,
        build=model_and_agent(GCIQLModel, GCIQLAgent),
        presets=(
            *baseline_sizes(
                book=dict(batch_size=256, value_hidden=256, actor_hidden=256),
                quick=dict(
                    batch_size=64, value_hidden=32, value_layers=1, actor_hidden=32, actor_layers=1
                ),
            ),
            BOOK_MAZE_HORIZON,
        ),
        needs=frozenset({"episodes"}),  # goals are drawn from the same episode's future states
    )
)

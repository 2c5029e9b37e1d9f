"""CQL: single-task conservative Q-learning on SAC (reference: ref-cql)."""

from __future__ import annotations

from zsrl.agents.cql import CQLAgent, CQLModel
from zsrl.config import CQLConfig
from zsrl.methods import (
    BOOK_MAZE_HORIZON,
    Method,
    Preset,
    baseline_sizes,
    model_and_agent,
    no_context,
    register,
)

register(
    Method(
        name="cql",
        label="CQL",
        config=CQLConfig,
        build=model_and_agent(CQLModel, CQLAgent),
        presets=(
            *baseline_sizes(
                book=dict(batch_size=256, critic_hidden=256, actor_hidden=256),
                quick=dict(
                    batch_size=64,
                    critic_hidden=32,
                    critic_layers=1,
                    actor_hidden=32,
                    actor_layers=1,
                ),
            ),
            Preset(
                dict(lr_temperature=1e-3, lr_alpha=1e-3),
                "book scale: Adam moves log β and log α by about lr per update, so at the paper's 1e-4 "
                "they travel about 3 in 30k updates, α stays above 0.05 and the penalty keeps the "
                "policy at maximal entropy, return 0 (results/cql_book_dual_rates/)",
                scale="book",
            ),
            BOOK_MAZE_HORIZON,
        ),
        single_task=True,
        q_context_dim=no_context,
        needs=frozenset({"rewards"}),
    )
)

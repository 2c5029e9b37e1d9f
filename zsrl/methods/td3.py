"""TD3: single-task offline TD3 without behaviour cloning (reference: ref-td3)."""

from __future__ import annotations

from zsrl.agents.td3 import TD3Agent, TD3Model
from zsrl.config import TD3Config
from zsrl.methods import (
    BOOK_MAZE_HORIZON,
    Method,
    baseline_sizes,
    model_and_agent,
    no_context,
    register,
)

register(
    Method(
        name="td3",
        label="TD3",
        config=TD3Config,
        build=model_and_agent(TD3Model, TD3Agent),
        presets=(
            *baseline_sizes(
                book=dict(batch_size=256, critic_hidden=256, actor_hidden=256),
                quick=dict(batch_size=64, critic_hidden=32, critic_layers=1, actor_hidden=32),
            ),
            BOOK_MAZE_HORIZON,
        ),
        single_task=True,
        q_context_dim=no_context,
        needs=frozenset({"rewards"}),
    )
)

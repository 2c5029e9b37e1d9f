"""TD3: single-task offline TD3 without behaviour cloning (reference: ref-td3)."""

from __future__ import annotations

from zsrl.agents.td3 import TD3Agent, TD3Model
from zsrl.config import TD3Config
from zsrl.methods import BOOK_MAZE_HORIZON, Method, Preset, model_and_agent, no_context, register

register(
    Method(
        name="td3",
        label="TD3",
        config=TD3Config,
        build=model_and_agent(TD3Model, TD3Agent),
        presets=(
            Preset(
                dict(batch_size=256, critic_hidden=256, actor_hidden=256),
                "book scale: FB's widths and batch, for a 2-core CPU",
                scale="book",
            ),
            Preset(
                dict(batch_size=64, critic_hidden=32, critic_layers=1, actor_hidden=32),
                "quick scale: tiny networks for tests",
                scale="quick",
            ),
            BOOK_MAZE_HORIZON,
        ),
        single_task=True,
        q_context_dim=no_context,
        needs=frozenset({"rewards"}),
    )
)

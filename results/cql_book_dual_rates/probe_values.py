"""What a trained CQL critic and actor say over the maze: a diagnostic of session 8 (issue 5).

    python results/cql_book_dual_rates/probe_values.py RUN_DIR [--weights last|best]

On a 10 x 10 grid of positions at rest (x, y from -0.27 to 0.27; rows printed top to bottom), prints
the value of the policy's own action min_k Q_k(s, π(s)), the spread max − min of Q over nine actions
(rest and the eight unit directions) and the policy's mean action. RUN_DIR is a CQL run's directory
(checkpoints are not committed: make it with the run's command, from its record).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from zsrl.train import WEIGHTS, load_run

torch.set_num_threads(1)
parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("run", type=Path)
parser.add_argument("--weights", default="last", choices=list(WEIGHTS))
args = parser.parse_args()
trainer, step = load_run(args.run, args.weights)
model = trainer.model
cells = np.linspace(-0.27, 0.27, 10)  # 10
states = np.array([[x, y, 0.0, 0.0] for y in cells[::-1] for x in cells], np.float32)  # 100 x 4
obs = torch.as_tensor(trainer.domain.observe(states))  # 100 x O
directions = torch.tensor(
    [[0, 0], [1, 0], [-1, 0], [0, 1], [0, -1], [1, 1], [1, -1], [-1, 1], [-1, -1]],
    dtype=torch.float32,
)  # 9 x 2
with torch.no_grad():
    action = model.act(obs)  # 100 x 2
    value = model.q_value(obs, action).numpy().reshape(10, 10)
    q = torch.stack([model.q_value(obs, d.expand(len(obs), 2)) for d in directions], 1)  # 100 x 9
spread = (q.max(1).values - q.min(1).values).numpy().reshape(10, 10)
np.set_printoptions(precision=2, suppress=True, linewidth=160)
print(f"{args.run} ({trainer.cfg.data.name}, {args.weights} weights, step {step})")
print(f"x of the columns: {cells.round(2)}; y of the rows, top to bottom: {cells[::-1].round(2)}")
print("Q(s, pi(s)):\n", value)
print("max - min of Q(s, a) over nine actions:\n", spread)
print("policy mean action (a_x, a_y):\n", action.numpy().reshape(10, 10, 2).round(2))

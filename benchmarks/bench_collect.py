"""Dataset collection on the point-mass maze against raw dm_control stepping.

Prints a table. Run on a quiet machine (nothing else on the cores):

    python benchmarks/bench_collect.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from zsrl.data import collect, default_spec
from zsrl.envs import get_domain


def dm_control_steps_per_second(steps: int = 20_000) -> float:
    """Raw dm_control stepping of the same domain: ``env.step`` with uniform random actions."""
    env = get_domain("point_mass_maze").load("reach_top_left", seed=0)
    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, size=(steps, 2))
    env.reset()
    start = time.perf_counter()
    for action in actions:
        if env.step(action).last():
            env.reset()
    return steps / (time.perf_counter() - start)


def collection_steps_per_second(name: str) -> float:
    spec = default_spec("point_mass_maze", name)
    start = time.perf_counter()
    data = collect(spec, progress=False)
    return len(data) / (time.perf_counter() - start)


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    raw = dm_control_steps_per_second()
    print(f"{'point_mass_maze stepping':34s} {'steps/s':>10s} {'vs dm_control':>14s}")
    print(f"{'dm_control env.step (raw)':34s} {raw:10.0f} {1.0:13.2f}x")
    for name in ("random", "uniform-reset"):
        rate = collection_steps_per_second(name)
        print(f"{'collect ' + name:34s} {rate:10.0f} {rate / raw:13.2f}x")


if __name__ == "__main__":
    main()

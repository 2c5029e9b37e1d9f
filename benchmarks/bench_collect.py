"""Open-loop dataset collection on every domain against the raw simulator's own stepping.

Prints one table: for each domain, the environment's own ``step`` with uniform random actions
(dm_control's ``env.step`` for the maze, walker, quadruped and jaco; Gymnasium's ``env.step`` for
walker2d and halfcheetah), and the ``random`` collector (and the maze's ``uniform-reset``), which
steps whole batches of episodes with ``mujoco.rollout`` (on walker2d, whose falls end episodes, each
episode in one ``MjData`` until its first terminal state) and observes them from the physics states.
The last column is the collector's rate as a multiple of the raw stepping measured in the same run.
Each rate is the best of ``--repeats`` timings, taken in turn (raw, then each collector, then again),
so that a burst of load on a shared machine slows one timing, not the ratio. Run on a quiet machine
(nothing else on the cores):

    python benchmarks/bench_collect.py [--domains walker jaco] [--transitions 10000] [--steps 5000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from zsrl.data import collect, collector_names, default_spec
from zsrl.envs import domain_names, get_domain


def raw_steps_per_second(domain: str, steps: int) -> float:
    """The environment's own ``step`` with uniform random actions, resetting at episode ends."""
    rng = np.random.default_rng(0)
    dom = get_domain(domain)
    actions = rng.uniform(-1, 1, size=(steps, dom.action_dim))
    if dom.load is not None:  # a dm_control domain
        env = dom.load(next(iter(dom.tasks)), seed=0)
        env.reset()
        start = time.perf_counter()
        for action in actions:
            if env.step(action).last():
                env.reset()
        return steps / (time.perf_counter() - start)
    import gymnasium as gym

    from zsrl.envs.gym_mujoco import ENVIRONMENTS

    env = gym.make(ENVIRONMENTS[domain].env_id)
    env.reset(seed=0)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def collection_steps_per_second(domain: str, name: str, transitions: int) -> float:
    """Transitions per second of collector ``name`` gathering about ``transitions`` transitions
    (uncached), setup included. Where terminal states end episodes early (walker2d's falls), the
    episodes are as many as make about that many transitions at the mean length of 20 pilot ones."""
    spec = default_spec(domain, name, episodes=1)
    length = spec.episode_steps
    if get_domain(domain).terminated is not None:
        length = len(collect(default_spec(domain, name, episodes=20), progress=False)) / 20
    spec = default_spec(domain, name, episodes=max(1, round(transitions / length)))
    start = time.perf_counter()
    data = collect(spec, progress=False)
    return len(data) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", nargs="+", default=domain_names(), choices=domain_names())
    parser.add_argument(
        "--transitions", type=int, default=10_000, help="transitions per collection, about"
    )
    parser.add_argument("--steps", type=int, default=5_000, help="raw environment steps timed")
    parser.add_argument("--repeats", type=int, default=3, help="timings per rate; the best counts")
    args = parser.parse_args()
    print(f"{'domain':16s} {'stepping':34s} {'steps/s':>10s} {'vs raw':>8s}")
    for domain in args.domains:
        names = [name for name in ("random", "uniform-reset") if name in collector_names(domain)]
        timings: dict[str, list[float]] = {"raw": [], **{name: [] for name in names}}
        for _ in range(args.repeats):
            timings["raw"].append(raw_steps_per_second(domain, args.steps))
            for name in names:
                timings[name].append(collection_steps_per_second(domain, name, args.transitions))
        raw = max(timings["raw"])
        print(f"{domain:16s} {'env.step (raw)':34s} {raw:10.0f} {1.0:7.2f}x")
        for name in names:
            rate = max(timings[name])
            print(f"{domain:16s} {'collect ' + name:34s} {rate:10.0f} {rate / raw:7.2f}x")


if __name__ == "__main__":
    main()

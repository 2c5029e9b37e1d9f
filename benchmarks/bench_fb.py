"""Timings of the foundation: FB updates at each scale, and dataset collection against dm_control.

Prints two tables. Run on a quiet machine (nothing else on the cores):

    python benchmarks/bench_fb.py [--device cpu] [--threads 2] [--scales quick book paper]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from zsrl.agents import Batch, FBAgent
from zsrl.config import preset
from zsrl.data import collect, default_spec
from zsrl.envs import get_domain
from zsrl.model import FBModel
from zsrl.train import resolve_device


def time_updates(scale: str, device: torch.device, seconds: float) -> tuple[float, int]:
    """Median ms per FB update over repeated timed blocks, and the batch size."""
    cfg = preset("fb", "point_mass_maze", scale).agent
    torch.manual_seed(0)
    agent = FBAgent(FBModel(4, 2, cfg).to(device), cfg)
    n = cfg.batch_size
    batch = Batch(
        torch.randn(n, 4, device=device),
        torch.rand(n, 2, device=device) * 2 - 1,
        torch.randn(n, 4, device=device),
    )
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(5):
        agent.update(batch)
    sync()
    start = time.perf_counter()
    agent.update(batch)
    sync()
    per_block = max(1, int(seconds / 5 / max(time.perf_counter() - start, 1e-4)))
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(per_block):
            agent.update(batch)
        sync()
        samples.append((time.perf_counter() - start) / per_block * 1e3)
    return float(np.median(samples)), n


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--scales", nargs="+", default=["quick", "book", "paper"])
    parser.add_argument("--seconds", type=float, default=10.0, help="timing budget per scale")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print(f"{'scale':8s} {'batch':>6s} {'ms/update':>10s} {'updates/s':>10s}")
    for scale in args.scales:
        ms, batch = time_updates(scale, device, args.seconds)
        print(f"{scale:8s} {batch:6d} {ms:10.2f} {1e3 / ms:10.1f}")

    raw = dm_control_steps_per_second()
    print(f"\n{'point_mass_maze stepping':34s} {'steps/s':>10s} {'vs dm_control':>14s}")
    print(f"{'dm_control env.step (raw)':34s} {raw:10.0f} {1.0:13.2f}x")
    for name in ("random", "uniform-reset"):
        rate = collection_steps_per_second(name)
        print(f"{'collect ' + name:34s} {rate:10.0f} {rate / raw:13.2f}x")


if __name__ == "__main__":
    main()

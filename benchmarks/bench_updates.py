"""Milliseconds per training update of every method at every scale, and the cost relative to FB.

Prints one table. Run on a quiet machine (nothing else on the cores):

    python benchmarks/bench_updates.py [--device cpu] [--threads 2] [--scales quick book paper]
        [--methods fb vcfb mcfb dvcfb sf-lap gciql cql td3] [--seconds 10] [--penalty-states 1.0]

Each method updates on one fixed batch of its preset's size on the maze's 4-d observations, 2-d
actions (with a reward for the single-task methods and a goal for GC-IQL), so the table times the
update rule alone; drawing batches (GC-IQL's goals included) is not timed.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from zsrl.agents import Batch, build_agent
from zsrl.config import preset
from zsrl.methods import get_method, method_names
from zsrl.train import resolve_device


def time_updates(
    method: str, scale: str, device: torch.device, seconds: float, penalty_states: float | None
) -> tuple[float, int]:
    """Median ms per update over five timed blocks on one fixed batch, and the batch size."""
    cfg = preset(method, "point_mass_maze", scale).agent
    if penalty_states is not None and get_method(method).conservative:
        cfg.conservative.penalty_states = penalty_states
    torch.manual_seed(0)
    agent = build_agent(method, cfg, 4, 2, device)
    n = cfg.batch_size
    batch = Batch(
        torch.randn(n, 4, device=device) * 0.1,
        torch.rand(n, 2, device=device) * 2 - 1,
        torch.randn(n, 4, device=device) * 0.1,
        reward=torch.rand(n, device=device),
        goal=torch.randn(n, 4, device=device) * 0.1,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--scales", nargs="+", default=["quick", "book", "paper"])
    parser.add_argument("--methods", nargs="+", default=method_names())
    parser.add_argument("--seconds", type=float, default=10.0, help="timing budget per cell")
    parser.add_argument(
        "--penalty-states",
        type=float,
        default=None,
        help="share of each batch that gets the K action samples (default: the scale's preset)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print(
        f"{'method':8s} {'scale':8s} {'batch':>6s} {'ms/update':>10s} {'updates/s':>10s} {'vs fb':>7s}"
    )
    for scale in args.scales:
        base = None
        for method in args.methods:
            ms, batch = time_updates(method, scale, device, args.seconds, args.penalty_states)
            base = ms if method == "fb" else base
            ratio = f"{ms / base:6.2f}x" if base else "      -"
            print(f"{method:8s} {scale:8s} {batch:6d} {ms:10.2f} {1e3 / ms:10.1f} {ratio}")


if __name__ == "__main__":
    main()

"""Maze coverage of named datasets: side-by-side heat maps and the share of free cells visited.

    python scripts/coverage.py random uniform-reset rnd-short rnd:100000 rnd --tasks all \
        --out results/datasets/maze_coverage.png

Each argument is a collector name (its default maze dataset, loaded from the cache or collected),
``NAME:N`` for a uniform subsample of N transitions of it (the training runs' ``--n-transitions N``,
with the same subsample seed, 42), or a path to a dataset ``.npz``. The fractions are printed, and
with ``--out`` written beside the figure as JSON together with the command, the dataset names and
their checksums. ``--tasks`` adds, per task,
the share of transitions that earn at least a tenth of its top reward: the data a single-task
method (CQL) learns that task from.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from zsrl.config import DataConfig
from zsrl.data import Dataset, collector_names, default_spec, load_or_collect
from zsrl.data.dataset import rewarded_fraction
from zsrl.envs import get_domain
from zsrl.envs.point_mass_maze.maps import plot_coverage, room_shares, visited_fraction
from zsrl.io import atomic_write_json


def load(name: str, data_dir: Path | None) -> Dataset:
    """A dataset from a collector name (default maze spec), ``NAME:N`` or a file path."""
    if name.endswith(".npz"):
        return Dataset.load(Path(name))
    if ":" in name:
        collector, n = name.split(":", 1)
        if not n.isdigit() or int(n) < 1:
            raise ValueError(f"subsample size {n!r} in {name!r} must be a positive integer")
        return load(collector, data_dir).subsample(int(n), DataConfig().subsample_seed)
    if name not in collector_names():
        raise ValueError(
            f"unknown dataset {name!r}; give a .npz path or one of {collector_names()}"
        )
    return load_or_collect(default_spec("point_mass_maze", name), root=data_dir)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+", help="collector names or .npz paths")
    parser.add_argument("--bins", type=int, default=30, help="cells per side of the maze")
    parser.add_argument("--out", type=Path, default=None, help="figure path; JSON goes beside it")
    parser.add_argument("--data-dir", type=Path, default=None, help="default: $ZSRL_DATA_DIR")
    parser.add_argument(
        "--tasks", nargs="+", default=[], help="maze tasks whose reward coverage to report, or all"
    )
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    domain = get_domain("point_mass_maze")
    task_names = list(domain.tasks) if args.tasks == ["all"] else args.tasks
    try:
        tasks = [domain.task(name) for name in task_names]
        datasets = {name: load(name, args.data_dir) for name in args.datasets}
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    fractions = {name: visited_fraction(d, args.bins) for name, d in datasets.items()}
    rooms = {name: room_shares(d) for name, d in datasets.items()}
    rewarded = {
        name: {task.name: rewarded_fraction(d, task) for task in tasks}
        for name, d in datasets.items()
    }
    for name, fraction in fractions.items():
        print(f"{name:16s} {len(datasets[name]):8d} transitions  {fraction:6.1%} of free cells")
        print("  states per room: " + ", ".join(f"{r} {v:.1%}" for r, v in rooms[name].items()))
        for task, share in rewarded[name].items():
            print(f"  {task:22s} {share:7.2%} of transitions rewarded (r >= 0.1)")
    if args.out is not None:
        plot_coverage(datasets, args.out, args.bins)
        atomic_write_json(
            args.out.with_suffix(".json"),
            {
                "command": "python scripts/coverage.py " + shlex.join(argv),
                "bins": args.bins,
                "visited_fraction": fractions,
                "rewarded_fraction": rewarded,
                "room_share": rooms,
                "datasets": {
                    name: {
                        "name": d.meta.get("name"),
                        "transitions": len(d),
                        "sha256": d.meta.get("sha256"),
                    }
                    for name, d in datasets.items()
                },
            },
        )
        print(f"figure {args.out}, numbers {args.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

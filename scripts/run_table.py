"""One markdown row per run: its best evaluation, last mean return, actor Q, budget and wall time.

    python scripts/run_table.py results/aggregate_rnd_book/record_*.json --q-at 15000 30000

Each argument is a run directory or a committed ``record_X.json`` (its ``metrics_X.csv`` beside it).
The best evaluation is the one with the highest mean return over the run's tasks; the tasks it scored
on (return ≥ 0.5) are listed. "actor Q" is the logged predicted value of the actor's action (FB
family, SF-LAP; "-" for methods that log none). Rows are sorted by method (as ``zsrl.config.METHODS``
orders them), task and seed. The results READMEs' tables are made with it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from zsrl.config import METHOD_LABELS, METHODS
from zsrl.plots import read_metrics
from zsrl.results import load_records, metrics_path


def scored_tasks(scores: dict[str, float]) -> str:
    """'top_left 928, top_right 79': the tasks with a return of at least 0.5, or 'all 0'."""
    shown = [f"{task.removeprefix('reach_')} {v:.0f}" for task, v in scores.items() if v >= 0.5]
    return ", ".join(shown) or "all 0"


def actor_q_at(path: Path, steps: list[int]) -> list[str]:
    """The logged actor Q at each of ``steps`` (the last row at or before it), or '-'."""
    metrics_file = metrics_path(path)
    metrics = read_metrics(metrics_file) if metrics_file.exists() else {}
    if "actor_q" not in metrics:
        return ["-"] * len(steps)
    out = []
    for step in steps:
        logged = metrics["actor_q"][metrics["step"] <= step]
        out.append(f"{round(float(logged[-1])):,}" if len(logged) else "-")  # never "-0"
    return out


def run_row(path: Path, record: dict[str, Any], q_steps: list[int]) -> list[str]:
    best = max(record["evaluations"], key=lambda e: e["mean_score"])
    last = record["evaluations"][-1]
    task = record.get("single_task")
    label = METHOD_LABELS[record["method"]] + (f" ({task.removeprefix('reach_')})" if task else "")
    return [
        label,
        str(record["config"]["train"]["seed"]),
        f"{best['mean_score']:.1f} ({best['step'] / 1000:g}k: {scored_tasks(best['scores'])})",
        f"{last['mean_score']:.1f}",
        *actor_q_at(path, q_steps),
        f"{record['steps_done'] / 1000:g}k",
        f"{record['wall_time_s'] / 60:.0f} min",
    ]


def table(paths: list[Path], q_steps: list[int]) -> str:
    records = load_records(paths)
    order = sorted(
        range(len(paths)),
        key=lambda i: (
            METHODS.index(records[i]["method"]),
            records[i].get("single_task") or "",
            records[i]["config"]["train"]["seed"],
        ),
    )
    q_heads = [f"actor Q at {s / 1000:g}k" for s in q_steps]
    head = ["method", "seed", "best mean return (step: tasks)", "last", *q_heads, "updates", "wall"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for i in order:
        lines.append("| " + " | ".join(run_row(Path(paths[i]), records[i], q_steps)) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories or record_*.json")
    parser.add_argument(
        "--q-at", nargs="*", type=int, default=[], metavar="STEP", help="steps to report actor Q at"
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    print(table(args.runs, args.q_at))
    return 0


if __name__ == "__main__":
    sys.exit(main())

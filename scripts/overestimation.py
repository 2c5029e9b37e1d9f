"""FB's predicted values and returns against dataset size and quality (paper Figure 2).

Top row: the actor's Q (mean over the batch of min_j F_j(s, π(s, z), z)ᵀz, the paper's logged "Q") over
training, symlog scale, one panel per dataset and one line per size; bottom row: the mean return over the
tasks at each evaluation.

    python scripts/overestimation.py --run random/1000=runs/fig2_random_n1000 \
        --run random/10000=runs/fig2_random_n10000 --out results/fb_overestimation_book/figure2

Each ``--run`` takes DATASET/SIZE=RUN_DIR. Writes STEM.png and STEM.json (the curves' end points,
each run's command and record summary).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from zsrl.plots import evaluation_curve, read_metrics, save_script_outputs  # noqa: E402
from zsrl.results import load_records  # noqa: E402


def parse_run(text: str) -> tuple[str, int, Path]:
    label, sep, path = text.partition("=")
    dataset, slash, size = label.partition("/")
    if not (sep and slash and dataset and size.isdigit() and path):
        raise argparse.ArgumentTypeError(f"--run takes DATASET/SIZE=RUN_DIR, got {text!r}")
    return dataset, int(size), Path(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=parse_run, action="append", required=True)
    parser.add_argument("--steps", type=int, default=None, help="cut every curve at this step")
    parser.add_argument("--out", type=Path, required=True, help="path stem: writes .png and .json")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)

    datasets = list(dict.fromkeys(dataset for dataset, _, _ in args.run))
    fig, axes = plt.subplots(
        2, len(datasets), figsize=(4.2 * len(datasets), 5.4), squeeze=False, layout="constrained"
    )
    summary = []
    for dataset, size, run_dir in sorted(args.run, key=lambda r: (r[0], r[1])):
        col = datasets.index(dataset)
        metrics = read_metrics(run_dir / "metrics.csv")
        (record,) = load_records([run_dir])
        keep = metrics["step"] <= (args.steps or np.inf)
        steps, q = metrics["step"][keep], metrics["actor_q"][keep]  # logged rows
        eval_steps, returns = evaluation_curve(record)
        eval_keep = eval_steps <= (args.steps or np.inf)
        label = f"n = {size:,}"
        axes[0, col].plot(steps, q, label=label)
        axes[1, col].plot(eval_steps[eval_keep], returns[eval_keep], marker="o", ms=3, label=label)
        summary.append(
            {
                "dataset": dataset,
                "n_transitions": size,
                "run": str(run_dir),
                "command": record["command"],
                "scale": record["scale"],
                "last_step": int(steps[-1]),
                "actor_q_last": float(q[-1]),
                "actor_q_max": float(q.max()),
                "log10_actor_q_last": float(np.log10(q[-1])) if q[-1] > 0 else None,
                "best_mean_return": float(returns[eval_keep].max()),
            }
        )
    for col, dataset in enumerate(datasets):
        top, bottom = axes[0, col], axes[1, col]
        top.set_yscale("symlog", linthresh=1.0)
        top.set_title(f"FB on {dataset}")
        top.set_ylabel("actor Q (symlog)")
        bottom.set_ylabel("mean return over tasks")
        bottom.set_xlabel("updates")
        bottom.set_ylim(-20, 1000)
        top.legend(frameon=False, fontsize=8)
    save_script_outputs(args.out, "scripts/overestimation.py", argv, summary, fig=fig)
    for s in summary:
        print(
            f"{s['dataset']:8s} n={s['n_transitions']:>7,}  actor Q at {s['last_step']}: "
            f"{s['actor_q_last']:9.4g} (max {s['actor_q_max']:.4g})  best return {s['best_mean_return']:.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

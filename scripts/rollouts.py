"""Draw zero-shot rollouts of trained maze runs on the maze map (paper Figure 3's panels).

Each run is re-evaluated from its last checkpoint or its best weights (or both, ``--weights last
best``: then each run is drawn twice, labelled ``LABEL, last`` and ``LABEL, best``) with the
evaluation seed it was trained with; the figure has one row per run and one column per task. Next to
the figure go the returns of the drawn episodes and their (x, y) paths, with the command that made
them.

    python scripts/rollouts.py --run FB=runs/didactic_fb_seed0 --run VC-FB=runs/didactic_vcfb_seed0 \
        --weights best --out results/didactic_rnd_no_left_book/rollouts
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from zsrl.envs.point_mass_maze.maps import draw_rollouts  # noqa: E402
from zsrl.evaluate import evaluate  # noqa: E402
from zsrl.plots import save_script_outputs  # noqa: E402
from zsrl.record import environment_info  # noqa: E402
from zsrl.train import WEIGHTS, labelled_run, load_run  # noqa: E402

PATH_STRIDE = 5  # keep every 5th position of the stored paths (1000 steps -> 201 points)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=labelled_run, action="append", required=True)
    parser.add_argument("--weights", nargs="+", default=["best"], choices=list(WEIGHTS))
    parser.add_argument("--tasks", nargs="+", default=None, help="default: each run's tasks")
    parser.add_argument(
        "--episodes", type=int, default=None, help="per task; default: each run's evaluation's"
    )
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, required=True, help="path stem: writes .png .json .npz")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)

    weights = list(dict.fromkeys(args.weights))
    drawn = [
        (label if len(weights) == 1 else f"{label}, {w}", run_dir, w)
        for label, run_dir in args.run
        for w in weights
    ]
    runs, paths, datasets = [], {}, {}
    for label, run_dir, w in drawn:
        loaded, step = load_run(run_dir, w, args.data_dir, datasets.get(run_dir))
        datasets[run_dir] = loaded.dataset  # the run's other weights evaluate on it too
        cfg = loaded.cfg
        tasks = args.tasks or loaded.task_names
        episodes = args.episodes or cfg.eval.episodes
        results = evaluate(
            loaded.model,
            loaded.domain,
            tasks,
            episodes=episodes,
            seed=cfg.eval.seed,
            dataset=loaded.dataset,
            inference_samples=cfg.eval.inference_samples,
            goal_inference=cfg.eval.goal_inference,
            keep_paths=True,
        )
        runs.append(
            {
                "label": label,
                "run": str(run_dir),
                "method": cfg.method,
                "step": step,
                "weights": w,
                "episodes": episodes,
                "tasks": {name: r.to_dict() for name, r in results.items()},
            }
        )
        for name, r in results.items():
            paths[f"{label}/{name}"] = r.paths[:, ::PATH_STRIDE, :2].astype(np.float32)
        print(f"{label} ({run_dir}, {w} weights, step {step}):")
        for name, r in results.items():
            print(f"  {name:20s} IQM return {r.score:7.1f}")

    tasks = list(runs[0]["tasks"])
    for run in runs:
        if list(run["tasks"]) != tasks:
            parser.error(
                f"runs score different tasks: {run['label']} has {list(run['tasks'])}, "
                f"{runs[0]['label']} has {tasks}; pass --tasks"
            )
    fig, axes = plt.subplots(
        len(runs),
        len(tasks),
        figsize=(2.6 * len(tasks), 2.6 * len(runs)),
        squeeze=False,
        layout="constrained",
    )
    for row, run in zip(axes, runs, strict=True):
        for ax, task in zip(row, tasks, strict=True):
            draw_rollouts(ax, paths[f"{run['label']}/{task}"], goal=task, color="C3")
            ax.set_title(
                f"{run['label']}: {task}\nIQM return {run['tasks'][task]['score']:.0f}", fontsize=9
            )
    save_script_outputs(
        args.out,
        "scripts/rollouts.py",
        argv,
        runs,
        fig=fig,
        arrays=paths,
        episodes=args.episodes,
        path_stride=PATH_STRIDE,
        environment=environment_info(loaded.device),
    )
    print(f"wrote {args.out}.png, .json and .npz")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Maps of predicted values over the maze: what conservatism suppresses (book, "Conservative FB").

For each run and task, on a grid of maze positions at rest, the trained model's Q(s, a, z_task) =
min_j F_j(s, a, z)ᵀz is averaged over a fixed fan of "left" actions (a_x < 0) and over the mirrored fan
of "right" actions (a_x > 0). On the didactic data (every left action removed) the difference
left − right is the value the model gives actions it never saw, relative to ones it did.

    python scripts/value_maps.py --run FB=runs/didactic_fb_seed0 --run VC-FB=runs/didactic_vcfb_seed0 \
        --task reach_top_right --out results/didactic_rnd_no_left_book/value_maps

Writes STEM.npz (the maps, NaN inside walls) and STEM.json (the runs, steps, weights and command).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from zsrl.envs.point_mass_maze.maps import EXTENT, coverage_histogram, free_cells
from zsrl.evaluate import infer_task_vectors
from zsrl.plots import save_script_outputs
from zsrl.record import environment_info
from zsrl.train import WEIGHTS, LoadedRun, labelled_run, load_run

FAN = 7  # actions per fan


def action_fans() -> tuple[np.ndarray, np.ndarray]:
    """Unit-norm actions pointing left (angles about 101°..259°) and their mirror images to the right."""
    angles = np.linspace(np.pi / 2 + 0.2, 3 * np.pi / 2 - 0.2, FAN)  # FAN
    left = np.stack([np.cos(angles), np.sin(angles)], axis=1)  # FAN x 2, a_x < 0
    right = left * np.array([-1.0, 1.0])  # FAN x 2, a_x > 0
    return left.astype(np.float32), right.astype(np.float32)


@torch.no_grad()
def value_maps(run: LoadedRun, task: str, bins: int) -> dict[str, np.ndarray]:
    """Maps over the free cells at rest, each (bins, bins) [y, x], NaN in walls: mean Q over the left
    fan and over the right fan, the policy's own value Q(s, π(s, z), z), and the implied reward
    B(s)ᵀz. Plus "coverage": the dataset's visits per cell."""
    model = run.model
    device = model.obs_mean.device
    cfg = run.cfg
    z = infer_task_vectors(
        model,
        [run.domain.task(task)],
        run.dataset,
        cfg.eval.inference_samples,
        cfg.eval.seed,
        cfg.eval.goal_inference,
    )  # 1 x d
    edges = np.linspace(-EXTENT, EXTENT, bins + 1)
    centres = (edges[:-1] + edges[1:]) / 2  # bins
    x, y = np.meshgrid(centres, centres, indexing="xy")  # bins x bins, [y, x]
    states = np.stack([x.ravel(), y.ravel(), 0 * x.ravel(), 0 * y.ravel()], axis=1)  # cells x 4
    obs = torch.as_tensor(run.domain.observe(states), device=device)  # cells x O
    z = z.expand(len(obs), -1)  # cells x d
    out = {
        # V^π(s) = Q(s, π(s, z), z): where the deterministic policy expects value
        "policy": model.q_value(obs, model.act(obs, z), z).cpu().numpy().reshape(bins, bins),
        # r_z(s) = B(s)ᵀz: the reward the task vector stands for (with E_ρ[B Bᵀ] = I)
        "reward": (model.backward(obs) * z).sum(-1).cpu().numpy().reshape(bins, bins),
    }
    for name, fan in zip(("left", "right"), action_fans(), strict=True):
        q = torch.stack(
            [
                model.q_value(obs, torch.as_tensor(a, device=device).expand(len(obs), -1), z)
                for a in fan
            ]
        )  # FAN x cells
        out[name] = q.mean(0).cpu().numpy().reshape(bins, bins)  # bins x bins
    walls = ~free_cells(bins).T  # bins x bins, [y, x]
    out = {k: np.where(walls, np.nan, v) for k, v in out.items()}
    out["coverage"] = coverage_histogram(run.dataset, bins).T.astype(float)  # bins x bins [y, x]
    return out


def argmax_position(values: np.ndarray) -> list[float]:
    """The (x, y) centre of the cell where a (bins, bins) [y, x] map is largest."""
    bins = values.shape[0]
    centres = (np.arange(bins) + 0.5) / bins * 2 * EXTENT - EXTENT  # bins
    row, col = np.unravel_index(np.nanargmax(values), values.shape)
    return [float(centres[col]), float(centres[row])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--run", type=labelled_run, action="append", required=True, help="LABEL=RUN_DIR"
    )
    parser.add_argument("--task", required=True)
    parser.add_argument("--weights", default="best", choices=list(WEIGHTS))
    parser.add_argument("--bins", type=int, default=40)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, required=True, help="path stem: writes .npz and .json")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    maps, runs = {}, []
    for label, run_dir in args.run:
        run, step = load_run(run_dir, args.weights, data_root=args.data_dir)
        for name, values in value_maps(run, args.task, args.bins).items():
            maps[f"{label}/{name}"] = values.astype(np.float32)
        gap = np.nanmean(maps[f"{label}/left"] - maps[f"{label}/right"])
        peaks = {k: argmax_position(maps[f"{label}/{k}"]) for k in ("policy", "reward")}
        runs.append(
            {"label": label, "run": str(run_dir), "method": run.cfg.method, "step": step,
             "dataset": run.cfg.data.name, "weights": args.weights,
             "mean_left_minus_right": float(gap), "argmax_policy_value": peaks["policy"],
             "argmax_reward": peaks["reward"]}
        )  # fmt: skip
        print(
            f"{label} ({args.weights} weights, step {step}): mean Q(left) − Q(right) {gap:.3g}; "
            f"V^π peaks at {np.round(peaks['policy'], 3)}, B·z at {np.round(peaks['reward'], 3)}"
        )
    save_script_outputs(
        args.out,
        "scripts/value_maps.py",
        argv,
        runs,
        arrays=maps,
        task=args.task,
        bins=args.bins,
        fan={k: v.tolist() for k, v in zip(("left", "right"), action_fans(), strict=True)},
        environment=environment_info(run.device),
    )
    print(f"wrote {args.out}.npz and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())

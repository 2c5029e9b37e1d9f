"""Where FB's values run away: the actor's Q, the measure's level and the rank of B, run against run.

Four panels, a line per run (``zsrl.plots.draw_divergence``):

1. the actor's Q, mean over the batch of min_j F_j(s, π(s, z), z)ᵀz (symlog): the paper's Figure 2;
2. the mean target measure M̄ = min_j F̄_j(s', a', z)ᵀB̄(s⁺) over the batch (symlog), with its exact
   value for a measure that is right, 1/(1 − γ): E_{s⁺~ρ}[M(s, a, s⁺)] = Σ_t γᵗ;
3. B's effective rank over the batch, tr(Σ)²/tr(Σ²) with Σ = E_ρ[B Bᵀ], read off the logged
   orthonormality loss: with ‖B‖² = d, ortho = λ(tr(Σ²) − 2d), so rank = d²/(ortho/λ + 2d), which
   is d when Σ = I and 1 when every B(s) points the same way;
4. the mean return over tasks at each evaluation.

    python scripts/divergence.py --run FB=runs/agg_random_fb_seed0 \
        --run 'FB, frozen actor'=runs/diag_random_fb_frozen_actor_seed0 --out results/x/divergence

Each ``--run`` takes LABEL=RUN_DIR, or LABEL=results/.../record_X.json beside its metrics_X.csv.
Writes STEM.png and STEM.json (each run's end points and command).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from zsrl.plots import draw_divergence, save_script_outputs  # noqa: E402
from zsrl.train import labelled_run  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=labelled_run, action="append", required=True)
    parser.add_argument("--until", type=int, default=None, help="cut every run at this update")
    parser.add_argument("--out", type=Path, required=True, help="path stem: writes .png and .json")
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6), layout="constrained")
    summary = draw_divergence(axes, dict(args.run), until=args.until)
    save_script_outputs(args.out, "scripts/divergence.py", argv, summary, fig=fig)
    for s in summary:
        print(
            f"{s['label']:24s} M̄ at {s['last_step']}: {s['target_M_last']:9.4g}  "
            f"above 1/(1−γ) from {s['first_step_above_exact_level']}  B rank max "
            f"{s['b_rank_max']:.1f} last {s['b_rank_last']:.1f}  "
            f"actor Q {s['actor_q_last']:.4g}  best return {s['best_mean_return']:.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

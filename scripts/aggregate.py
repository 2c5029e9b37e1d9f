"""Compare methods over seeds and tasks: IQM, mean, median, optimality gap with 95 % intervals,
probability of improvement over a reference, and performance profiles (paper Figure 4's statistics).

    python scripts/aggregate.py --method FB='runs/agg_random_fb_seed*' \
        --method VC-FB='runs/agg_random_vcfb_seed*' --out results/aggregate_random_book/aggregate

Each ``--method`` takes LABEL=PATTERN, a glob of run directories or record files; the first label is
the reference. Single-task runs (CQL, TD3: one run per task) are combined per seed over their tasks;
``--normalize-to CQL`` adds every IQM as a percentage of CQL's, as the paper's aggregate plots do.
Writes PATTERN.json (every number, with the command) and PATTERN.png.
"""

from __future__ import annotations

import argparse
import glob
import shlex
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from zsrl.envs import get_domain  # noqa: E402
from zsrl.io import atomic_write_json  # noqa: E402
from zsrl.plots import save_figure  # noqa: E402
from zsrl.results import compare_methods, load_records  # noqa: E402
from zsrl.stats import performance_profile_ci, plot_performance_profiles  # noqa: E402


def parse_method(text: str) -> tuple[str, list[Path]]:
    label, sep, pattern = text.partition("=")
    if not sep or not label or not pattern:
        raise argparse.ArgumentTypeError(f"--method takes LABEL=PATTERN, got {text!r}")
    paths = sorted(Path(p) for p in glob.glob(pattern))
    if not paths:
        raise argparse.ArgumentTypeError(f"no runs match {pattern!r} (label {label!r})")
    return label, paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", type=parse_method, action="append", required=True)
    parser.add_argument("--which", default="best", choices=["best", "last"])
    parser.add_argument("--out", type=Path, required=True, help="path stem: writes .json and .png")
    parser.add_argument(
        "--normalize-to",
        "--normalise-to",  # the spelling of the committed results' commands
        dest="normalize_to",
        default=None,
        metavar="LABEL",
        help="also give each IQM as a percentage of this method's (the paper normalises to CQL)",
    )
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)

    groups = {label: load_records(paths) for label, paths in args.method}
    comparison = compare_methods(groups, which=args.which, normalize_to=args.normalize_to)
    comparison["command"] = "python scripts/aggregate.py " + shlex.join(argv)
    comparison["runs"] = {label: [str(p) for p in paths] for label, paths in args.method}

    reference = comparison["reference"]
    print(f"{args.which} evaluation of each run; 95 % stratified-bootstrap intervals")
    print(f"{'method':10s} {'runs':>4s} {'IQM':>22s} {'mean':>22s}  P(improves on {reference})")
    for label, s in comparison["methods"].items():
        a = s[args.which]["aggregates"]
        cells = [
            f"{a[m]['point']:6.1f} [{a[m]['ci95'][0]:6.1f}, {a[m]['ci95'][1]:6.1f}]"
            for m in ("iqm", "mean")
        ]
        p = comparison["probability_of_improvement"].get(label)
        improves = "" if p is None else f"{p['point']:.2f} [{p['ci95'][0]:.2f}, {p['ci95'][1]:.2f}]"
        print(f"{label:10s} {s['runs']:4d} {cells[0]:>22s} {cells[1]:>22s}  {improves}")

    normalised = comparison.get("normalised")
    if normalised and "error" in normalised:
        print(f"not normalised: {normalised['error']}")
    elif normalised:
        print(f"IQM as a percentage of {normalised['to']}'s ({normalised['base_iqm']:.1f}):")
        for label, n in normalised["methods"].items():
            print(f"  {label:10s} {n['point']:6.1f} % [{n['ci95'][0]:.1f}, {n['ci95'][1]:.1f}]")

    best = get_domain(next(iter(groups.values()))[0]["domain"]).max_return  # the profile's range
    taus = np.linspace(0, best, 101)  # 101
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.4), layout="constrained")
    labels = list(comparison["methods"])
    for k, label in enumerate(labels):
        point = comparison["methods"][label][args.which]["iqm"]
        low, high = comparison["methods"][label][args.which]["ci95"]
        left.errorbar(
            point, k, xerr=[[point - low], [high - point]], fmt="o", color=f"C{k}", capsize=4
        )
    left.set_yticks(range(len(labels)), labels)
    left.set_ylim(-0.6, len(labels) - 0.4)
    left.set_xlabel(f"IQM return ({args.which} evaluation), 95 % CI")
    left.set_xlim(-20, best)
    profiles = {
        label: (taus, *performance_profile_ci(np.array(s[args.which]["scores"]), taus))
        for label, s in comparison["methods"].items()
    }
    plot_performance_profiles(profiles, ax=right, xlabel="return τ")
    save_figure(fig, args.out.with_suffix(".png"))
    plt.close(fig)
    atomic_write_json(args.out.with_suffix(".json"), comparison)
    print(f"wrote {args.out.with_suffix('.json')} and .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())

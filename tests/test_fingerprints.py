"""Same seed, same bytes: every method's weights and scores against fingerprints made earlier.

`tests/data/fingerprints.json` holds, for each method, the SHA-256 of its weights after a short
quick-scale run and the run's evaluation scores, made by the code as it was when the file was
written (with the versions it names). A refactor that claims not to change behaviour must leave
them equal. A deliberate change of behaviour rewrites the file, and the commit says why:

    python tests/test_fingerprints.py --write
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import mujoco
import numpy as np
import pytest
import torch

from zsrl.config import apply_overrides, preset
from zsrl.methods import get_method, method_names
from zsrl.train import CHECKPOINT, Trainer, load_checkpoint

FILE = Path(__file__).parent / "data" / "fingerprints.json"
SETTINGS = [
    "data.episodes=500",
    "train.steps=40",
    "train.log_every=10",
    "train.eval_every=20",
    "train.checkpoint_every=20",
    "train.threads=1",  # results depend on the thread count
    "train.seed=7",
    "eval.episodes=1",
]


def versions() -> dict[str, str]:
    return {"torch": torch.__version__, "numpy": np.__version__, "mujoco": mujoco.__version__}


def fingerprint(method: str, out_dir: Path, data_root: Path) -> dict:
    """The weights' SHA-256 and the evaluation scores of a 40-update quick run of ``method``."""
    single = ["eval.tasks=['reach_top_left']"] if get_method(method).single_task else []
    cfg = apply_overrides(preset(method, "point_mass_maze", "quick"), [*SETTINGS, *single])
    before = torch.get_num_threads()
    try:
        record = Trainer(cfg, out_dir, data_root=data_root, progress=False).run()
    finally:
        torch.set_num_threads(before)
    model = load_checkpoint(out_dir / CHECKPOINT)["agent"]["model"]
    digest = hashlib.sha256()
    for name, tensor in model.items():  # state-dict order: part of what must not change
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    scores = [
        {task: [result["returns"], result["final_distance"]] for task, result in e["tasks"].items()}
        for e in record["evaluations"]
    ]
    return {"weights_sha256": digest.hexdigest(), "scores": scores}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


@pytest.mark.parametrize("method", method_names())
def test_same_seed_gives_the_recorded_weights_and_scores(method, tmp_path, data_root):
    stored = json.loads(FILE.read_text())
    if stored["versions"] != versions():
        pytest.skip(f"fingerprints made with {stored['versions']}, this is {versions()}")
    assert fingerprint(method, tmp_path, data_root) == stored["methods"][method]


def write(root: Path) -> None:
    methods = {m: fingerprint(m, root / m, root / "data") for m in method_names()}
    FILE.parent.mkdir(exist_ok=True)
    lines = [f"  {json.dumps(m)}: {json.dumps(entry)}" for m, entry in methods.items()]
    body = ",\n".join(lines)  # one method per line: a diff shows which changed
    FILE.write_text(f'{{"versions": {json.dumps(versions())},\n "methods": {{\n{body}\n}}}}\n')
    print(f"wrote {FILE} ({len(methods)} methods)")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_fingerprints.py --write")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        write(Path(tmp))

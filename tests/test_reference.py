"""The book's reference appendix and metrics page: what the code cites must exist in the book.

The code, the README and the chapters cite the paper and its code through the sections of
``book/reference.md`` (``reference: ref-fb-loss`` in docstrings and comments, ``{ref}`` links in the
book), never through a file the repository does not carry. ``book/metrics.md`` explains every column
that training writes to ``metrics.csv``, for every method.
"""

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from zsrl.agents import TrainingData, build_agent
from zsrl.config import preset
from zsrl.envs import get_domain
from zsrl.methods import get_method, method_names
from zsrl.probe import ValueProbe

ROOT = Path(__file__).parents[1]
REFERENCE = ROOT / "book" / "reference.md"
METRICS_PAGE = ROOT / "book" / "metrics.md"
LABEL = r"\bref-[a-z0-9]+(?:-[a-z0-9]+)*"
SUFFIXES = {".py", ".md", ".ipynb", ".xml", ".yml", ".yaml", ".toml", ".txt"}
# Citations of a private file outside the repository; built from pieces so that this file does not
# match itself.
FORBIDDEN = ["paper" + "_spec", "spec " + "§", "§", "shared/" + "reference", "spec " + "Appendix"]


def sources() -> list[Path]:
    """Every text file of the code, the book, the scripts, the benchmarks and the tests, the README,
    the changelog and the results' notes."""
    files = [ROOT / "README.md", ROOT / "CHANGELOG.md", *(ROOT / "results").rglob("*.md")]
    for folder in ("zsrl", "book", "scripts", "benchmarks", "tests"):
        files += [
            p
            for p in (ROOT / folder).rglob("*")
            if p.is_file() and p.suffix in SUFFIXES and "_static" not in p.parts
        ]
    return sorted(set(files) - {Path(__file__).resolve()})


def defined_labels() -> list[str]:
    return re.findall(rf"^\(({LABEL})\)=\s*$", REFERENCE.read_text(), re.M)


def test_nothing_cites_a_file_the_repository_does_not_carry():
    found = []
    for path in sources():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            hits = [f for f in FORBIDDEN if f.lower() in line.lower()]
            if hits:
                found.append(f"{path.relative_to(ROOT)}:{number}: {hits} in {line.strip()!r}")
    assert not found, "cite the book's reference appendix instead:\n" + "\n".join(found)


def test_every_label_is_defined_once_before_a_heading_and_listed():
    text = REFERENCE.read_text()
    labels = defined_labels()
    assert len(labels) == len(set(labels)), "a label of book/reference.md is defined twice"
    for label in labels:  # a label names the heading that follows it
        assert re.search(rf"^\({label}\)=\n#+ \S", text, re.M), f"{label} is not before a heading"
    listed = re.findall(rf"^\| `({LABEL})` \| \{{ref\}}`\1` \|$", text, re.M)
    assert sorted(listed) == sorted(labels), "the table of labels at the end lists every label"


def test_every_label_the_code_cites_exists_in_the_reference():
    labels = set(defined_labels())
    cited: dict[str, list[str]] = {}
    for path in sources():
        if path == REFERENCE:
            continue
        for label in re.findall(LABEL, path.read_text()):
            cited.setdefault(label, []).append(str(path.relative_to(ROOT)))
    code = {label for label, where in cited.items() if any(w.startswith("zsrl/") for w in where)}
    assert {"ref-fb-loss", "ref-conservative", "ref-cql", "ref-maze"} <= code
    missing = {label: sorted(set(where)) for label, where in cited.items() if label not in labels}
    assert not missing, f"labels cited but not defined in book/reference.md: {missing}"


def test_book_pages_link_the_reference_with_ref_roles():
    labels = set(defined_labels())
    for page in sorted((ROOT / "book").rglob("*.md")):
        for target in re.findall(r"\{ref\}`(?:[^`<]*<)?([^`<>]+)>?`", page.read_text()):
            if target.startswith("ref-"):
                assert target in labels, f"{page.name} links the unknown label {target}"


def logged_columns(method: str) -> list[str]:
    """The columns of ``metrics.csv`` for ``method``: the trainer's, one update's metrics (quick
    scale, random data) and, for models with action values, the value probe's."""
    header = re.search(
        r"writer\.writerow\(\[(.*?)\*keys\]\)", (ROOT / "zsrl" / "train.py").read_text()
    )
    assert header, "zsrl/train.py no longer writes its header as [..., *keys]"
    columns = re.findall(r'"([a-z_]+)"', header.group(1))
    torch.manual_seed(0)
    domain = get_domain("point_mass_maze")
    n, obs_dim, action_dim = 512, domain.obs_dim, domain.action_dim
    obs, next_obs = torch.randn(n, obs_dim), torch.randn(n, obs_dim)
    action = torch.rand(n, action_dim) * 2 - 1
    reward = torch.rand(n) if get_method(method).single_task else None
    episode, step = np.repeat(np.arange(8), 64), np.tile(np.arange(64), 8)
    cfg = preset(method, "point_mass_maze", "quick").agent
    agent = build_agent(method, cfg, obs_dim, action_dim)
    data = TrainingData(obs, action, next_obs, reward, episode, step)
    columns += list(agent.update(agent.sample_batch(data)))
    context_dim = get_method(method).q_context_dim
    if context_dim is not None:  # as zsrl.train.Trainer decides
        probe = ValueProbe.from_arrays(obs.numpy(), action.numpy(), context_dim(cfg))
        columns += list(probe(agent.model))
    return columns


@pytest.mark.parametrize("method", method_names())
def test_every_logged_metric_is_explained(method, one_thread):
    columns = logged_columns(method)
    assert columns[:2] == ["step", "elapsed_s"]
    explained = set(re.findall(r"^\| `([A-Za-z0-9_]+)` \|", METRICS_PAGE.read_text(), re.M))
    missing = [c for c in columns if c not in explained]
    assert not missing, f"book/metrics.md does not explain {method}'s columns {missing}"


def test_public_names_are_spelt_one_way():
    """Code names use American spellings (normalize, summarize); prose and data keys are left alone."""
    british = re.compile(
        r"\b(?:def|class)\s+\w*(?:normalis|standardis|summaris|optimis|initialis|regularis)"
    )
    found = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for path in sorted((ROOT / "zsrl").rglob("*.py"))
        for match in british.finditer(path.read_text())
    ]
    assert not found

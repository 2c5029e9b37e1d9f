"""The book's sources: the experiment notebook under papermill, page format, equation labels, editions.

The strict HTML build and the browser check run in `make book` and `make screenshots` (both in
`make test`); the nbval regression notebooks live in tests/nbval/ and run under `pytest --nbval`.
"""

import importlib.util
import json
import re
from pathlib import Path

import pytest

from zsrl.config import RUN_OPTIONS
from zsrl.envs import domain_names, get_domain
from zsrl.methods import get_method, method_names

ROOT = Path(__file__).parents[1]
BOOK = ROOT / "book"
NOTEBOOK = BOOK / "run_experiment.ipynb"

papermill = pytest.importorskip("papermill")
yaml = pytest.importorskip("yaml")


def run_notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **parameters) -> dict:
    """Execute run_experiment.ipynb with ``parameters`` (data in tmp_path); its run's record."""
    monkeypatch.setenv("ZSRL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    run_dir = tmp_path / "run"
    parameters = dict(scale="quick", threads=1, out_dir=str(run_dir)) | parameters
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(str(NOTEBOOK), str(out), parameters=parameters, progress_bar=False)
    return json.loads((run_dir / "record.json").read_text())


def pages() -> list[Path]:
    return sorted(p for p in BOOK.rglob("*.md") if "_static" not in p.parts)


@pytest.mark.parametrize("method", method_names())
def test_run_experiment_runs_every_method_at_quick_scale(tmp_path, method, monkeypatch):
    monkeypatch.setenv("ZSRL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "out.ipynb"
    run_dir = tmp_path / "run"
    parameters = dict(method=method, scale="quick", steps=60, threads=1, out_dir=str(run_dir))
    if get_method(method).single_task:
        parameters["tasks"] = "reach_top_left"  # cql and td3 learn one task
    papermill.execute_notebook(str(NOTEBOOK), str(out), parameters=parameters, progress_bar=False)
    record = json.loads((run_dir / "record.json").read_text())
    assert record["method"] == method and record["scale"] == "quick"
    assert record["steps_done"] == 60 and record["complete"]
    assert record["command"].startswith("papermill book/run_experiment.ipynb")
    assert f"-p method {method}" in record["command"]
    if get_method(method).single_task:
        assert record["single_task"] == "reach_top_left" and record["tasks"] == ["reach_top_left"]
        assert "-p tasks reach_top_left" in record["command"]
    executed = json.loads(out.read_text())
    images = [
        o
        for c in executed["cells"]
        if c["cell_type"] == "code"
        for o in c.get("outputs", [])
        if "image/png" in o.get("data", {})
    ]
    assert len(images) == 3  # learning curves, per-task returns, rollouts
    html = [
        "".join(o["data"]["text/html"])
        for c in executed["cells"]
        if c["cell_type"] == "code"
        for o in c.get("outputs", [])
        if "text/html" in o.get("data", {})
    ]
    videos = sorted(p.name for p in (run_dir / "videos").iterdir())
    assert videos == sorted(f"{task}_best.mp4" for task in record["tasks"])
    assert sum(h.count('<video src="data:video/mp4;base64,') for h in html) == len(videos)


@pytest.mark.parametrize("domain", [d for d in domain_names() if d != "point_mass_maze"])
def test_run_experiment_runs_on_every_domain(tmp_path, domain, monkeypatch):
    """`-p domain walker` (and every other domain): its default data (a tiny `random`), trained,
    evaluated on its first task (every task's reward is checked in the domain's own tests), its
    video written."""
    task = next(iter(get_domain(domain).tasks))  # one task: one evaluation rollout, one video
    record = run_notebook(tmp_path, monkeypatch, domain=domain, steps=10, episodes=1, tasks=task)
    assert record["domain"] == domain and record["complete"] and record["steps_done"] == 10
    assert record["dataset"]["name"].startswith(f"{domain}__random__1x")
    assert record["tasks"] == [task]
    assert [p.name for p in (tmp_path / "run" / "videos").iterdir()] == [f"{task}_best.mp4"]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("method", "cql2", "unknown method 'cql2'; valid choices: ['fb', 'vcfb', 'mcfb', 'dvcfb'"),
        ("tasks", "reach_moon", "unknown task 'reach_moon'"),
        ("scale", "huge", "unknown scale 'huge'; valid choices"),
        ("dataset", "d4rl", "unknown dataset 'd4rl'; valid choices"),
        ("steps", -3, "steps must be at least 1, got -3"),
        ("seed", "abc", "seed must be an integer, got 'abc'"),
        ("sead", 1, "unknown parameters ['sead']; valid parameters"),
    ],
)
def test_a_bad_parameter_fails_in_the_first_cell(tmp_path, name, value, message):
    out = tmp_path / "out.ipynb"
    with pytest.raises(papermill.PapermillExecutionError) as error:
        papermill.execute_notebook(
            str(NOTEBOOK), str(out), parameters={name: value}, progress_bar=False
        )
    assert message in str(error.value)
    executed = json.loads(out.read_text())
    code = [c for c in executed["cells"] if c["cell_type"] == "code"]
    tags = [c["metadata"].get("tags", []) for c in code]
    first = tags.index(["parameters"]) + 2  # after the parameters and papermill's injected cell
    failed = [
        i for i, c in enumerate(code) if any(o["output_type"] == "error" for o in c["outputs"])
    ]
    assert failed == [first]


def test_the_notebooks_parameters_are_the_declared_run_options():
    notebook = json.loads(NOTEBOOK.read_text())
    cell = next(c for c in notebook["cells"] if "parameters" in c["metadata"].get("tags", []))
    values: dict = {}
    exec("".join(cell["source"]), {}, values)
    declared = {o.name: o.default for o in RUN_OPTIONS}
    assert values == {**declared, "out_dir": ""}  # same names, same defaults as the CLI's flags


def test_notebooks_carry_no_outputs_and_a_python3_kernel():
    notebook = json.loads(NOTEBOOK.read_text())
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None
    for page in pages():
        text = page.read_text()
        if "{code-cell}" in text:
            header = yaml.safe_load(text.split("---", 2)[1])
            assert header["kernelspec"]["name"] == "python3", page


def test_every_page_is_in_the_table_of_contents():
    toc = (ROOT / "_toc.yml").read_text()
    listed = set(re.findall(r"(?:file|root):\s*(\S+)", toc))
    found = {str(p.relative_to(ROOT).with_suffix("")) for p in [*pages(), NOTEBOOK]}
    assert found == listed


def test_equations_cited_by_the_code_are_defined_once_in_the_book():
    cited = set()
    for source in (ROOT / "zsrl").rglob("*.py"):
        cited |= set(re.findall(r"book eq\. \((eq-[a-z0-9-]+)\)", source.read_text(), re.I))
    assert {"eq-fb-measure-loss", "eq-vc-penalty", "eq-mc-penalty"} <= cited
    text = "\n".join(p.read_text() for p in pages())
    for label in sorted(cited):
        defined = re.findall(rf"\$\$\s*\({re.escape(label)}\)", text)
        assert len(defined) == 1, f"{label} is defined {len(defined)} times in the book"


def test_the_student_edition_leaves_out_the_solutions(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "student_toc", ROOT / "scripts" / "student_toc.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "toc.yml"
    assert module.main([str(ROOT / "_toc.yml"), str(out)]) == 0
    full = set(re.findall(r"file:\s*(\S+)", (ROOT / "_toc.yml").read_text()))
    student = set(re.findall(r"file:\s*(\S+)", out.read_text()))
    solutions = {f for f in full if "/solutions/" in f}
    assert solutions and student == full - solutions


def test_book_cache_is_emptied_when_the_code_changes(tmp_path):
    spec = importlib.util.spec_from_file_location("book_cache", ROOT / "scripts" / "book_cache.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    code = tmp_path / "zsrl"
    code.mkdir()
    (code / "a.py").write_text("x = 1\n")
    build = tmp_path / "_build"
    assert module.refresh(build, [code]) is False  # a new build folder: nothing to clear
    executed = [build / name / "page" for name in module.STALE]
    for path in executed:
        path.parent.mkdir(parents=True)
        path.write_text("outputs")
    assert module.refresh(build, [code]) is False and all(p.exists() for p in executed)
    (code / "a.py").write_text("x = 2\n")
    assert module.refresh(build, [code]) is True
    assert not any(p.parent.exists() for p in executed)
    assert module.refresh(build, [code]) is False

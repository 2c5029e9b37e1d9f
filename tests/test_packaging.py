"""pyproject.toml and environment.yml list the same dependencies."""

import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def normalise(requirement: str) -> str:
    return re.sub(r"\s+", "", requirement).lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted |= set(extra)
    lines = (ROOT / "environment.yml").read_text().splitlines()
    pip_section = [ln.strip()[2:] for ln in lines if ln.startswith("      - ")]
    listed = {req for req in pip_section if not req.startswith("-e")}
    assert {normalise(r) for r in listed} == {normalise(r) for r in wanted}


def test_pins_that_matter():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "mujoco==3.17.0" in deps and "dm-control==1.0.50" in deps
    (torch,) = [d for d in deps if d.startswith("torch")]
    assert ">=" in torch and "<" in torch  # a range the local 2.13.0 CPU wheel satisfies

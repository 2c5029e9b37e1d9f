# zsrl: the two commands of the README are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export MUJOCO_GL ?= egl

.PHONY: venv run test lint bench clean

# torch==2.13.0 first: a CPU wheel from local disk where there is one; the range in pyproject.toml
# then installs nothing more (an unpinned torch would pull a multi-GB CUDA build).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0 || $(PY) -m pip install -q "torch>=2.4,<2.15"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

venv: $(VENV)/.installed

# The main job: collect the default maze dataset, train FB at book scale, print zero-shot returns.
run: venv
	$(PY) -m zsrl train --method fb --domain point_mass_maze --dataset uniform-reset --scale book

test: venv
	$(PY) -m ruff check zsrl tests benchmarks scripts
	$(PY) -m pytest -q

lint: venv
	$(PY) -m ruff check zsrl tests benchmarks scripts
	$(PY) -m ruff format --check zsrl tests benchmarks scripts

bench: venv
	$(PY) benchmarks/bench_updates.py
	$(PY) benchmarks/bench_collect.py

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache

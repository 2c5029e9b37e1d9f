# zsrl: the two commands of the README are `make book` (the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
JB := $(VENV)/bin/jupyter-book
export MUJOCO_GL ?= egl
# The book pages and the tests run many small torch programs: one thread each is fastest on 2 cores.
export OMP_NUM_THREADS ?= 1

# Pages whose math and figures the headless browser checks: PATH[:math][:MIN_IMAGES].
SCREENSHOT_PAGES := book/successor_measures.html:math:2 book/fb_representations.html:math:2 \
	book/failure_mode.html:math:2 book/conservative_fb.html:math:2 book/experiments.html::2 \
	book/status.html

.PHONY: venv run book book-student screenshots train test lint bench regression-update clean

# torch==2.13.0 first: a CPU wheel from local disk where there is one; the range in pyproject.toml
# then installs nothing more (an unpinned torch would pull a multi-GB CUDA build).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0 || $(PY) -m pip install -q "torch>=2.4,<2.15"
	$(PY) -m pip install -q -e ".[dev,book]"
	touch $@

venv: $(VENV)/.installed

# The main job: build the book (every page executes; long experiments come from results/).
run: book

# Strict build: warnings are errors. Every page executes again when zsrl/ or results/ change.
book: venv
	$(PY) scripts/book_cache.py _build zsrl results
	$(JB) build . --builder html -n -W --keep-going
	@echo "the book: _build/html/index.html"

# The student edition: the same book without the assignment solutions.
book-student: venv
	$(PY) scripts/book_cache.py _build/student/_build zsrl results
	$(PY) scripts/student_toc.py _toc.yml _build/student/_toc.yml
	$(JB) build . --builder html -n -W --keep-going --toc _build/student/_toc.yml \
		--path-output _build/student
	@echo "the student edition: _build/student/_build/html/index.html"

# Headless Chromium opens built pages and fails when their math or figures are missing.
screenshots: book
	$(PY) scripts/screenshots.py _build/html --out _build/screenshots $(SCREENSHOT_PAGES)

# FB on the maze at book scale (about 15 minutes on two cores), as the book's first experiment.
train: venv
	$(PY) -m zsrl train --method fb --domain point_mass_maze --dataset uniform-reset --scale book

# Lint, the book (strict build + browser check), then unit tests, papermill smoke runs and the nbval
# regression notebooks (tests/nbval) in one pytest run, whose summary closes the output.
test: venv
	$(PY) -m ruff check zsrl tests benchmarks scripts
	$(MAKE) screenshots
	$(PY) -m pytest -q --nbval

lint: venv
	$(PY) -m ruff check zsrl tests benchmarks scripts
	$(PY) -m ruff format --check zsrl tests benchmarks scripts

bench: venv
	$(PY) benchmarks/bench_updates.py
	$(PY) benchmarks/bench_collect.py

# Re-execute the nbval regression notebooks, storing their new outputs (say why in the commit).
regression-update: venv
	for nb in tests/nbval/*.ipynb; do \
		$(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace "$$nb" || exit 1; done

clean:
	rm -rf $(VENV) runs _build .pytest_cache .ruff_cache

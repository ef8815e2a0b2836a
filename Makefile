# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Both create .venv from the pinned set (constraints.txt) on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEV_STAMP := $(VENV)/.dev-stamp

.PHONY: help test demo lint simulate bench ground-truth docs docs-site clean lock

help:
	@echo "make demo      run the whole pipeline on the local simulator"
	@echo "make test      run the test suite"
	@echo "make lint      ruff check"
	@echo "make bench     measure speed and memory (docs/benchmarks.md)"
	@echo "make ground-truth  the models against the simulator's true history, 4 h and 2 days"
	@echo "make simulate  serve the simulator on 127.0.0.1:8765 at 600x speed"
	@echo "make docs      regenerate docs/models.md from sql/marts/*.yml, docs/index.md from README.md"
	@echo "make docs-site build the documentation site into build/site/ (mkdocs --strict)"
	@echo "make lock      re-pin constraints.txt from the current .venv"

# make demo installs what running needs (about 500 MB); make test adds the test tools, the
# notebook's, Spark and the docs site (about 1.4 GB in all).
$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is required; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e .
	@touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $(DEV_STAMP)

# one worker per core; an idle worker takes queued tests from a busy one (worksteal).
# The PostgreSQL tests use BACKFILLS_TEST_POSTGRES_URL (.ci/run sets it), else start a throwaway
# server themselves, else are skipped with the reason in the summary.
# The tests start the CLI as hundreds of processes: its bytecode is compiled once here, where
# PYTHONDONTWRITEBYTECODE (set on some CI images) would have each process compile it again.
test: $(DEV_STAMP)
	$(BIN)/python -m compileall -q pipelines
	$(BIN)/python -m pytest -n auto --dist worksteal

demo: $(STAMP)
	$(BIN)/backfills demo

simulate: $(STAMP)
	$(BIN)/backfills simulate --port 8765 --speed 600

lint: $(DEV_STAMP)
	$(BIN)/ruff check pipelines tests benchmarks
	$(BIN)/ruff format --check pipelines tests benchmarks

bench: $(DEV_STAMP)
	$(BIN)/python -m benchmarks

# the short audit of make test and two simulated days, with the per-table counts printed
ground-truth: $(DEV_STAMP)
	$(BIN)/python -m pytest -s -m '' tests/test_ground_truth.py

docs: $(DEV_STAMP)
	$(BIN)/python -m pipelines.models
	$(BIN)/python scripts/docs_home.py

# the documentation site, in build/site/ (open build/site/index.html; it works offline)
docs-site: docs
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

lock: $(DEV_STAMP)
	$(BIN)/python -m pip freeze --exclude-editable --disable-pip-version-check > constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# copier-sagemaker-pipelines: two commands on a fresh machine with Python 3.11+ and pip.
PYTHON ?= python3
# Python writes each module's bytecode once, instead of compiling it again in every process
# (copier, the test workers, the generated projects' commands) where the shell sets this.
unexport PYTHONDONTWRITEBYTECODE
VENV := .venv
BIN := $(VENV)/bin
LINTED := hooks migrations tests docs runner tools
DEMO_DIR ?= /tmp/copier-sagemaker-pipelines-demo
# Material for MkDocs prints a banner about its successor on every build.
export NO_MKDOCS_2_WARNING := 1

.PHONY: help demo test runner-test lint bench bench-rerun docs docs-capture seed-locks clean

help:
	@echo "make demo   render a project with the defaults into $(DEMO_DIR), run its pipeline locally, approve and deploy the version to a local staging endpoint, send it five rows"
	@echo "make test   every test of the template (renders, runs the generated projects' tests)"
	@echo "make runner-test  the local runner's own tests (runner/, in runner/.venv)"
	@echo "make bench  run-local against the direct scripts at 150, 100k and 1M rows (minutes)"
	@echo "make bench-rerun  re-runs (nothing changed, train.py edited) against a cold run (minutes)"
	@echo "make docs   serve the documentation site on http://127.0.0.1:8000"
	@echo "make docs-capture  re-run the tutorial's commands and rewrite docs/_snippets/ (minutes)"
	@echo "make seed-locks  re-lock the uv.lock new projects start from (after changing their dependencies)"

# pip brings in uv alone; uv installs the rest (35 s with pip, a few with uv).
$(BIN)/copier: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check "uv>=0.9"
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements-dev.txt
	@touch $@

demo: $(BIN)/copier
	rm -rf $(DEMO_DIR)
	$(BIN)/copier copy --trust --defaults --vcs-ref HEAD . $(DEMO_DIR)
	$(MAKE) -C $(DEMO_DIR) install UV=$(CURDIR)/$(BIN)/uv
	$(MAKE) -C $(DEMO_DIR) definition
	$(MAKE) -C $(DEMO_DIR) run-local
	$(MAKE) -C $(DEMO_DIR) approve VERSION=1
	@# Five held-out rows (the batch transform's input: rows the model never trained on).
	head -n 5 $(DEMO_DIR)/.local/s3/*/iris-classifier/*/preprocess/batch/batch.csv > $(DEMO_DIR)/rows.csv
	$(MAKE) -C $(DEMO_DIR) invoke FILE=rows.csv
	@echo "Rendered into $(DEMO_DIR): pipeline-definition.json, the local runs under .local/runs/, and version 1 on the local staging endpoint (.local/endpoints/), which answered rows.csv above"

# Includes tests/test_docs.py: the site is built with --strict. The runner's tests run once,
# here, not in each generated project: as one test of the suite (tests/test_runner_package.py),
# so the workers run them beside the generated projects. --maxschedchunk 1: a worker is
# handed one or two tests at a time, as it frees up (xdist's default hands each worker a
# quarter of its share at once: one of them took nearly all the slow tests, collected
# first, while the other idled).
RUNNER_PY := runner/.venv/bin/python
test: $(BIN)/copier $(RUNNER_PY)
	$(BIN)/ruff check $(LINTED)
	$(BIN)/python -m pytest -n 2 --maxschedchunk 1 --durations=15 tests

# The local runner in an environment of its own, built with this venv's uv.
$(RUNNER_PY): $(BIN)/copier runner/pyproject.toml
	$(BIN)/uv venv --quiet --allow-existing --python $(PYTHON) runner/.venv
	$(BIN)/uv pip install --quiet --python $(RUNNER_PY) -e "runner[offline,test]"
	@touch $@

runner-test: $(RUNNER_PY)
	cd runner && .venv/bin/python -m pytest -q

bench: $(BIN)/copier
	$(BIN)/python bench/bench_run_local.py --uv $(CURDIR)/$(BIN)/uv

bench-rerun: $(BIN)/copier
	$(BIN)/python bench/bench_rerun.py --uv $(CURDIR)/$(BIN)/uv

lint: $(BIN)/copier
	$(BIN)/ruff check $(LINTED)
	$(BIN)/ruff format --check $(LINTED)

docs: $(BIN)/copier
	$(BIN)/mkdocs serve

# The uv.lock each new project starts from (tools/seed_locks.py); UPGRADE=1 takes the newest
# versions the requirements allow instead of keeping the current ones.
seed-locks: $(BIN)/copier
	$(BIN)/python tools/seed_locks.py --uv $(BIN)/uv $(if $(UPGRADE),--upgrade)

docs-capture: $(BIN)/copier
	$(BIN)/python docs/_capture/capture_tutorial.py --uv $(CURDIR)/$(BIN)/uv

clean:
	rm -rf $(VENV) runner/.venv .pytest_cache site

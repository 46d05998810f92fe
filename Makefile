# copier-sagemaker-pipelines: two commands on a fresh machine with Python 3.11+ and pip.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR ?= /tmp/copier-sagemaker-pipelines-demo

.PHONY: help demo test lint bench clean

help:
	@echo "make demo   render a project with the defaults into $(DEMO_DIR) and run its pipeline locally"
	@echo "make test   every test of the template (renders, runs the generated projects' tests)"
	@echo "make bench  run-local against the direct scripts at 150, 100k and 1M rows (minutes)"

$(BIN)/copier: requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	@touch $@

demo: $(BIN)/copier
	rm -rf $(DEMO_DIR)
	$(BIN)/copier copy --trust --defaults --vcs-ref HEAD . $(DEMO_DIR)
	$(MAKE) -C $(DEMO_DIR) install UV=$(CURDIR)/$(BIN)/uv
	$(MAKE) -C $(DEMO_DIR) definition
	$(MAKE) -C $(DEMO_DIR) run-local
	@echo "Rendered into $(DEMO_DIR): pipeline-definition.json, and the local run under .local/runs/"

test: $(BIN)/copier
	$(BIN)/ruff check hooks tests
	$(BIN)/python -m pytest -n 2 --durations=15 tests

bench: $(BIN)/copier
	$(BIN)/python bench/bench_run_local.py --uv $(CURDIR)/$(BIN)/uv

lint: $(BIN)/copier
	$(BIN)/ruff check hooks tests
	$(BIN)/ruff format --check hooks tests

clean:
	rm -rf $(VENV) .pytest_cache

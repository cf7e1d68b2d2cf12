# Two commands on a fresh machine with Python 3.11:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1

.PHONY: demo test lint format bench clean-reports screenshots

# pip -qq: errors only (a machine's pip configuration may name index folders it lacks, which pip
# reports as warnings on every install).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -qq --upgrade pip
	$(BIN)/pip install -qq 'torch==2.13.0'   # the CPU wheel on disk; a plain `torch` pulls a CUDA build
	$(BIN)/pip install -qq -e '.[dev]'
	touch $(STAMP)

## demo: install, build the world if missing, run the pipeline (dvc repro), print the results table
demo: $(STAMP)
	$(BIN)/python -m flows.demo

## test: install, lint (ruff), check the layering (import-linter) and dead code (vulture), run the test suite
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/vulture
	$(BIN)/pytest -q -m "not gpu"

## bench: every benchmark once (CPU, float32): writes BENCHMARKS.md and reports/bench.json (~10 min on 2 cores)
bench: $(STAMP)
	$(BIN)/python -m bench.run

## screenshots: the MLflow UI of the last `make demo` (run, loss curves, registered model) into docs/img/
##   needs Chromium (Debian: apt-get install chromium); installs the `docs` extra (Playwright's client)
screenshots: $(STAMP)
	$(BIN)/pip install -qq -e '.[docs]'
	$(BIN)/python docs/screenshots.py --workdir . --out docs/img

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/lint-imports --no-cache && $(BIN)/vulture

format: $(STAMP)
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

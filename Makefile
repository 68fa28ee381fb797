# Two commands for a new user: `make demo` (generate data, train, evaluate, report) and `make test`.
# Each creates or reuses the virtual environment in .venv and installs what it needs.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# The CPU build of PyTorch; on a CUDA machine: make TORCH="torch" (or any CUDA wheel spec).
TORCH  ?= torch==2.13.0
STAMP  := $(VENV)/.phgmm-installed

DEMO_DATA ?= data/synth-demo
DEMO_NUM  ?= 500

.PHONY: venv test format demo bench docs clean-demo mutation

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@# torch first, pinned: the package's own range then never pulls a CUDA build
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(VENV)/bin/ruff check --quiet .
	$(VENV)/bin/ruff format --check --quiet .
	$(PY) -m pytest -q

format: $(STAMP)
	$(VENV)/bin/ruff check --fix --quiet .
	$(VENV)/bin/ruff format --quiet .

demo: $(STAMP)
	@test -d $(DEMO_DATA) || $(VENV)/bin/phgmm synth --out $(DEMO_DATA) --num $(DEMO_NUM) --size 256x128 --seed 0
	$(VENV)/bin/phgmm train --config configs/demo.yaml --overwrite
	$(VENV)/bin/phgmm evaluate --checkpoint runs/demo/checkpoints/best.pt --out runs/demo --overwrite
	@echo ""
	@echo "Demo finished. Report: runs/demo/report.md (metrics: runs/demo/metrics.json)"

# Every measured figure in README.md and docs/*.md is printed from docs/results/ by a cog generator
# in the page; this rewrites them. `make test` fails when a page differs (tests/test_docs_numbers.py).
docs: $(STAMP)
	$(PY) -m cogapp -r README.md docs/*.md

bench: $(STAMP)
	$(PY) benchmarks/param_counts.py
	$(PY) benchmarks/bench_synth.py
	$(PY) benchmarks/bench_loader.py

clean-demo:
	rm -rf runs/demo $(DEMO_DATA)

# Mutation testing (mutmut 3; not part of `make test`, too slow for CI): every module group in turn,
# results under docs/results/mutation/. One group: scripts/mutation.sh heads
MUTATION_GROUPS ?= classes report benchmark losses heads metrics
mutation: $(STAMP)
	$(PY) -m pip install --quiet "mutmut==3.8.1"
	for g in $(MUTATION_GROUPS); do MUTMUT=$(VENV)/bin/mutmut scripts/mutation.sh $$g; done

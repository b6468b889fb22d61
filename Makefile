# egobook: `make book` builds the whole book on the embedded dataset, `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# This machine serves exactly these builds; other machines may override TORCH_PINS.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
STAMP  := $(VENV)/.installed
PRESET ?= demo
JOBS   ?= 2

.PHONY: install test test-fast book lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_PINS)
	$(BIN)/python -m pip install -q -e ".[book,dev]"
	touch $(STAMP)

test: install
	MPLBACKEND=agg $(BIN)/python -m pytest -q

test-fast: install
	MPLBACKEND=agg $(BIN)/python -m pytest -q -m "not slow"

book: install
	$(BIN)/python -m egolib.book --preset $(PRESET) --jobs $(JOBS)

lint: install
	$(BIN)/ruff check egolib tests benchmarks book/*.py

clean:
	rm -rf _build

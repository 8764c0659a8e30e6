# ClickPulse developer commands. Every target installs what it needs first, so a fresh clone works.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export PATH := $(HOME)/.local/bin:$(PATH)
export DAGSTER_HOME ?= $(CURDIR)/.data/dagster
UV := uv
PYTEST_ARGS ?=

.PHONY: help install up down status lint format browser test test-js demo bench bench-full soak docs clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

install: ## Install uv (if missing) and the locked Python dependencies
	@command -v $(UV) >/dev/null 2>&1 || python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv
	@$(UV) sync --frozen --quiet
	@mkdir -p $(DAGSTER_HOME)
	@test -f $(DAGSTER_HOME)/dagster.yaml || cp orchestration/dagster.yaml $(DAGSTER_HOME)/dagster.yaml 2>/dev/null || true

up: install ## Start local Kafka (KRaft) and Redis, create the topics
	@$(UV) run clickpulse stack up

down: ## Stop what `make up` started (data stays under .data/)
	@$(UV) run clickpulse stack down

status: ## Show each service, address, version and who started it
	@$(UV) run clickpulse stack status

lint: install ## ruff, mypy, sqlfluff
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy
	@if [ -d dbt_project/models ]; then $(UV) run sqlfluff lint dbt_project/models dbt_project/macros; fi

format: install ## Apply ruff formatting and fixes
	$(UV) run ruff format .
	$(UV) run ruff check --fix .

browser: install ## Debian chromium + chromium-driver for the browser tests (apt-get when root)
	@$(UV) run python -c "from clickpulse.stack.browser import ensure_chromium; print('chromium:', *ensure_chromium())"

test-js: browser ## The browser SDK's tests (node's test runner)
	@if [ -d sdk/js/test ]; then cd sdk/js && node --test test/; fi

test: up lint test-js ## Install, start the stack, lint, run the whole suite
	$(UV) run pytest $(PYTEST_ARGS)

demo: up ## Start everything, run the main job end to end, print a summary
	$(UV) run clickpulse demo

bench: up ## Benchmarks (7-20 min): ratios against baselines measured in the same run -> bench/results.md
	CLICKPULSE_BENCH_RECS_SIZES=$${CLICKPULSE_BENCH_RECS_SIZES:-1M} $(UV) run python -m bench

bench-full: up ## Every benchmark at full size (adds the 10M-interaction recs training, 15-40 min)
	$(UV) run python -m bench

soak: up ## Long soak (flat lag and memory at half the sustainable rate), then the fault test, longer
	$(UV) run python -m bench.soak
	CLICKPULSE_FAULTS_EVENTS=$${CLICKPULSE_SOAK_FAULTS_EVENTS:-600000} \
	CLICKPULSE_FAULTS_SECONDS=$${CLICKPULSE_SOAK_FAULTS_SECONDS:-600} \
	$(UV) run pytest -s tests/faults/test_ingest_faults.py

docs: install ## dbt docs generate (served by `uv run dbt docs serve --project-dir dbt_project`)
	cd dbt_project && $(UV) run dbt docs generate --profiles-dir . --project-dir .

clean: down ## Stop the stack and delete local data (.data/)
	rm -rf .data

# One set of commands: CI, pre-commit and people run these targets.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PACKAGES := contracts libs/common tools/devstack tools/cli services/goals services/checkins services/gamification services/reports services/webhooks services/notifications
SRC := contracts libs tools services tests benchmarks conftest.py
STAMP := $(VENV)/.installed
# Coverage floor of `make test` (total %, line + branch, over [tool.coverage.run] source in
# pyproject.toml). It only ever goes up: raise it when the total does, never lower it.
COV_FLOOR := 88

.PHONY: install up down status test test-unit test-integration test-e2e lint fmt bench load schemas clean

$(STAMP): requirements-dev.txt $(foreach p,$(PACKAGES),$(p)/pyproject.toml)
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt $(foreach p,$(PACKAGES),-e $(p))
	@touch $(STAMP)

install: $(STAMP) ## virtualenv, Python packages and the Kafka jars
	$(BIN)/python -m mandaact_devstack fetch

up: install ## start Kafka, the MongoDB-compatible server and the four services; waits until ready
# MANDAACT_KAFKA_SASL=true make up: Kafka with SASL/SCRAM-SHA-512 and ACLs, each service as its own principal.
	$(BIN)/python -m mandaact_devstack up

down: ## stop everything `make up` started
	@test -x $(BIN)/python && $(BIN)/python -m mandaact_devstack down || true

status:
	$(BIN)/python -m mandaact_devstack status

test: install ## every test: unit, integration (real Kafka + MongoDB-compatible server) and e2e, with the coverage gate
	$(BIN)/pytest -q --cov --cov-report=term:skip-covered --cov-fail-under=$(COV_FLOOR)

test-unit: install
	$(BIN)/pytest -q -m unit

test-integration: install
	$(BIN)/pytest -q -m integration

test-e2e: install
	$(BIN)/pytest -q -m e2e

lint: install ## ruff (lint + format check) and mypy strict
	$(BIN)/ruff check $(SRC)
	$(BIN)/ruff format --check $(SRC)
	$(BIN)/mypy $(SRC)

fmt: install
	$(BIN)/ruff check --fix $(SRC)
	$(BIN)/ruff format $(SRC)

# `make bench` runs every benchmark; `make bench gamification` (or BENCH=gamification) some of
# them. The names after `bench` are made no-op goals so make does not try to build them.
BENCH ?=
ifeq (bench,$(firstword $(MAKECMDGOALS)))
BENCH_NAMES := $(wordlist 2,$(words $(MAKECMDGOALS)),$(MAKECMDGOALS))
ifneq ($(BENCH_NAMES),)
$(eval $(BENCH_NAMES):;@:)
endif
endif

bench: install ## figures with their same-run baselines, kept in bench-results/<name>.json
	$(BIN)/python -m benchmarks $(BENCH) $(BENCH_NAMES)

# `make load`: Locust headless against a running `make up` (docs/benchmarks.md, "Load").
# Locust is installed on demand (pinned), not in requirements-dev.txt: it pulls gevent, Flask
# and more, which CI never needs.
LOCUST_VERSION := 2.47.0
LOAD_USERS ?= 32
LOAD_RATE ?= 8
LOAD_TIME ?= 60s
load: install
	@$(BIN)/python -c 'import locust' 2>/dev/null && [ "$$($(BIN)/python -c 'import locust; print(locust.__version__)')" = "$(LOCUST_VERSION)" ] \
		|| $(BIN)/pip install -q locust==$(LOCUST_VERSION)
	@$(BIN)/python -c 'import sys, urllib.request as u; [u.urlopen(f"http://127.0.0.1:{p}/readyz", timeout=3) for p in (8001, 8002, 8003, 8004)]' 2>/dev/null \
		|| { echo "make load: the stack is not running or not ready (readyz on 127.0.0.1:8001-8004); start it with 'make up'" >&2; exit 1; }
	@mkdir -p .run/load
	MANDAACT_ENV=local $(BIN)/locust -f tools/load/locustfile.py --headless \
		-u $(LOAD_USERS) -r $(LOAD_RATE) -t $(LOAD_TIME) --csv .run/load/load --only-summary

schemas: install ## regenerate the checked-in JSON Schemas and AsyncAPI document
	$(BIN)/python -m mandaact_contracts.export

clean: down
	rm -rf .run

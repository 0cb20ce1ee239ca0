# One set of commands: CI, pre-commit and people run these targets.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PACKAGES := contracts libs/common tools/devstack tools/cli services/goals services/checkins services/gamification services/reports services/webhooks services/notifications services/ops
SRC := contracts libs tools services tests benchmarks conftest.py
STAMP := $(VENV)/.installed
# Coverage floor of `make test` (total %, line + branch, over [tool.coverage.run] source in
# pyproject.toml). It only ever goes up: raise it when the total does, never lower it.
COV_FLOOR := 88

.PHONY: install up down status test test-unit test-integration test-e2e test-scale lint lint-k8s fmt bench load schemas lock clean

# Third-party packages only from requirements.lock, every one checked against its hashes
# (--require-hashes, --no-deps: nothing unpinned comes in); then the local packages as editable
# installs built with the lock's setuptools (no build isolation, so no unpinned download), and
# `pip check` fails when a package needs something the lock lacks: then run `make lock`.
$(STAMP): requirements.lock $(foreach p,$(PACKAGES),$(p)/pyproject.toml)
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --require-hashes --no-deps -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation $(foreach p,$(PACKAGES),-e $(p))
	$(BIN)/python -m pip check
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

# The ops console's e2e tests need Debian's Chromium (docs/ops.md).
CHROMIUM ?= /usr/bin/chromium
NEEDS_CHROMIUM = @test -x $(CHROMIUM) || { echo "$@: $(CHROMIUM) is missing; the ops console's e2e tests run in it: apt-get install --no-install-recommends chromium (or CHROMIUM=/path/to/chromium)" >&2; exit 1; }

test: install ## every test: unit, integration (real Kafka + MongoDB-compatible server) and e2e, with the coverage gate
	$(NEEDS_CHROMIUM)
	MANDAACT_CHROMIUM=$(CHROMIUM) $(BIN)/pytest -q -m "not scale" --cov --cov-report=term:skip-covered --cov-fail-under=$(COV_FLOOR)

test-unit: install
	$(BIN)/pytest -q -m unit

test-integration: install
	$(BIN)/pytest -q -m integration

test-e2e: install
	$(NEEDS_CHROMIUM)
	MANDAACT_CHROMIUM=$(CHROMIUM) $(BIN)/pytest -q -m "e2e and not scale"

# The scale-out e2e (tests/e2e/test_scale_*.py): a 3-broker KRaft cluster, 2 instances of every
# worker, a broker SIGKILLed and workers restarted mid-flow, compared with the one-broker stack.
# About 2 minutes on 2 cores; its own pytest session (its own cluster), so not part of
# `make test`; .ci/run runs it after `make test` (docs/scaling.md).
test-scale: install
	$(BIN)/pytest -q -m scale

lint: install lint-k8s ## ruff (lint + format check), mypy strict, and the Kubernetes manifests
	$(BIN)/ruff check $(SRC)
	$(BIN)/ruff format --check $(SRC)
	$(BIN)/mypy $(SRC)

# deploy/k8s: `kustomize build`, then every object validated by kubeconform -strict against the
# schemas checked in under deploy/k8s/schemas (offline; regenerate them with
# deploy/k8s/schemas/generate.py). A kind without a schema fails, never skipped. Both tools are
# Go modules, installed with `go install` into .venv/bin at these versions.
KUSTOMIZE_VERSION := v5.8.1
KUBECONFORM_VERSION := v0.8.0
$(BIN)/kustomize-$(KUSTOMIZE_VERSION) $(BIN)/kubeconform-$(KUBECONFORM_VERSION):
	@command -v go >/dev/null || { echo "make lint: Go is needed to install kustomize and kubeconform (go install); put it on PATH (.ci/run: /usr/local/go/bin)" >&2; exit 1; }
	@mkdir -p $(BIN)
	GOBIN=$(abspath $(BIN)) GOTOOLCHAIN=local go install $(if $(findstring kustomize,$@),sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION),github.com/yannh/kubeconform/cmd/kubeconform@$(KUBECONFORM_VERSION))
	@touch $@

lint-k8s: $(BIN)/kustomize-$(KUSTOMIZE_VERSION) $(BIN)/kubeconform-$(KUBECONFORM_VERSION)
	@mkdir -p .run
	$(BIN)/kustomize build deploy/k8s > .run/k8s-built.yaml
	$(BIN)/kubeconform -strict -summary -schema-location 'deploy/k8s/schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json' .run/k8s-built.yaml

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

# `make lock`: requirements.lock and requirements-runtime.lock from requirements-dev.txt and
# every package's pyproject.toml (tools/lock/compile.sh; uv from the lock). Run it after
# changing a dependency or PACKAGES; commit both files.
lock: ## recompile the hash-pinned lock files (docs/infra.md, "Lock file")
	UV=$(BIN)/uv tools/lock/compile.sh $(PACKAGES)

schemas: install ## regenerate the checked-in JSON Schemas and AsyncAPI document
	$(BIN)/python -m mandaact_contracts.export

clean: down
	rm -rf .run

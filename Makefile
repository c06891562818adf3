# The Makefile is the interface: CI and the README use these targets and nothing else.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
OPENCODE_VERSION := 1.18.33
OPENCODE := node_modules/.bin/opencode
# opencode 2.x (npm `@opencode/cli`: another server API, core/protocol/v2.py), in a folder of
# its own: its package names its binary `opencode` too, and npm would link it over 1.x's.
OPENCODE2_VERSION := 2.1.2
OPENCODE2_DIR := .opencode2
OPENCODE2 := $(OPENCODE2_DIR)/node_modules/.bin/opencode2
PYTEST_ARGS ?=
# The other opencode versions `make test-matrix` proves (the pinned one is the fourth), each as
# its platform's binary package in .opencode-matrix/VERSION/ (core/opencode_versions.py: TESTED).
MATRIX_VERSIONS := 1.14.48 1.15.13 1.17.19
MATRIX_DIR := .opencode-matrix

.DEFAULT_GOAL := help
.PHONY: help setup run test test-unit test-e2e test-parity setup-matrix test-matrix setup-ray test-ray bench-ray lint format bench clean

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'

setup: $(VENV)/.installed node_modules/.installed $(OPENCODE2_DIR)/.installed ## Create .venv, install requirements and the pinned opencode 1.x and 2.x (idempotent)

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

node_modules/.installed: package.json
	npm install --no-audit --no-fund --no-package-lock --loglevel=error
	@# npm may skip the package's postinstall; it only links the platform binary, so run it if needed.
	test -x $(OPENCODE) && $(OPENCODE) --version >/dev/null 2>&1 || node node_modules/opencode-ai/postinstall.mjs
	test "$$($(OPENCODE) --version)" = "$(OPENCODE_VERSION)"
	touch $@

$(OPENCODE2_DIR)/.installed: Makefile
	npm install --prefix $(OPENCODE2_DIR) --no-save --no-audit --no-fund --no-package-lock --loglevel=error @opencode/cli@$(OPENCODE2_VERSION)
	test -x $(OPENCODE2) && $(OPENCODE2) --version >/dev/null 2>&1 || node $(OPENCODE2_DIR)/node_modules/@opencode/cli/postinstall.mjs
	test "$$($(OPENCODE2) --version)" = "opencode v$(OPENCODE2_VERSION)"
	touch $@

run: setup ## Set up, then run the example phase on the mock LLM
	$(PY) -m runner examples/hello/phase.yaml

# `make test`: every test but Ray's, on TEST_WORKERS parallel workers, then the tests marked
# `serial` (they measure time or need the machine) alone; then the 15 slowest of both passes.
TEST_WORKERS ?= 4
SUITE := -p runner.testing tests examples/hello/test_hello.py --ignore=tests/ray
REPORTS := runs/test-reports

test: setup ## Run every test but Ray's (2,205: unit, end-to-end on opencode 1.x and 2.x, parity, bench smoke, example) on 4 workers (about 7 min here)
	@mkdir -p $(REPORTS); status=0; \
	$(PY) -m pytest $(SUITE) -n $(TEST_WORKERS) --dist worksteal -m "not serial" --junitxml=$(REPORTS)/parallel.xml $(PYTEST_ARGS) || status=$$?; \
	$(PY) -m pytest $(SUITE) -m serial --junitxml=$(REPORTS)/serial.xml $(PYTEST_ARGS) || status=$$?; \
	$(PY) -m tests.slowest $(REPORTS)/parallel.xml $(REPORTS)/serial.xml; \
	exit $$status

test-unit: setup ## Run the unit tests only (no opencode server; ~40 s)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-e2e: setup ## Run the end-to-end tests only (real opencode server, mock LLM)
	$(PY) -m pytest tests/e2e $(PYTEST_ARGS)

test-parity: setup ## Compare `python -m runner --json` with `opencode run --format json` (part of test)
	$(PY) -m pytest -p runner.testing tests/parity $(PYTEST_ARGS)

setup-matrix: setup ## Install the matrix's other opencode versions into .opencode-matrix/ (registry once)
	@platform=$$(node -p 'process.platform + "-" + process.arch'); \
	for v in $(MATRIX_VERSIONS); do \
	  dir=$(MATRIX_DIR)/$$v; \
	  test -x $$dir/node_modules/opencode-$$platform/bin/opencode && continue; \
	  mkdir -p $$dir && echo '{"private": true}' > $$dir/package.json; \
	  npm install --prefix $$dir --no-audit --no-fund --no-package-lock --loglevel=error \
	    opencode-$$platform@$$v || exit 1; \
	done

test-matrix: setup-matrix ## CLI end-to-end and parity tests on every supported opencode, as a table (~50 min; PYTEST_ARGS="-n 2": ~21)
	$(PY) -m tests.matrix -- $(PYTEST_ARGS)

setup-ray: setup $(VENV)/.ray-installed ## Install the optional Ray executor into .venv (requirements-ray.txt)

$(VENV)/.ray-installed: requirements-ray.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-ray.txt
	touch $@

test-ray: setup-ray ## The Ray executor's tests, on a two-node Ray cluster on loopback (~3 min)
	$(PY) -m pytest tests/ray $(PYTEST_ARGS)

bench-ray: setup-ray ## The Ray executor's per-phase overhead against local, 4 phases (writes bench/ray.json)
	$(PY) -m tests.ray.overhead

lint: setup ## ruff check and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup ## Apply ruff's formatting and safe fixes
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: setup ## Benchmarks (about 25 minutes): print figures and ratios, write bench/results.json (never asserted)
	$(PY) -m tests.bench

clean: ## Remove the virtualenv, node_modules, .opencode2 and run outputs
	rm -rf $(VENV) node_modules $(OPENCODE2_DIR) $(MATRIX_DIR) runs .pytest_cache .ruff_cache

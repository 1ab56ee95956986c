# The README's two commands: `make demo` and `make test`. Both build the environment first.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# One onnxruntime build per environment: the GPU build where nvidia-smi sees a GPU.
ORT_EXTRA := $(shell nvidia-smi -L >/dev/null 2>&1 && echo gpu || echo cpu)
STAMP := $(VENV)/.installed-$(ORT_EXTRA)
PYTEST_ARGS ?=
# `make demo DEMO_ARGS=--no-gallery` ends in the terminal instead of serving the gallery (CI).
DEMO_ARGS ?=

.PHONY: venv demo test test-compose test-integration lint bench services-up services-down services-status clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@if [ "$(ORT_EXTRA)" = gpu ]; then $(BIN)/python -m pip uninstall -y -q onnxruntime || true; \
	else $(BIN)/python -m pip uninstall -y -q onnxruntime-gpu || true; fi
	$(BIN)/python -m pip install -e ".[$(ORT_EXTRA),train,dev]"
	@rm -f $(VENV)/.installed-*
	@touch $@

venv: $(STAMP)

demo: venv
	$(BIN)/pinclip demo $(DEMO_ARGS)

# Starts the real services, runs every test, and stops the services even when tests fail.
# Services that were already running before `make test` are left running (a developer's own).
# The compose end-to-end test runs last, on its own (it starts a whole stack in containers).
test: venv
	@if $(BIN)/pinclip services status >/dev/null 2>&1; then \
	  echo "services already running: leaving them up afterwards"; \
	else \
	  trap '$(BIN)/pinclip services down' EXIT; \
	fi; \
	$(BIN)/pinclip services up && \
	eval "$$($(BIN)/pinclip services env)" && \
	$(BIN)/python -m pytest -m "not compose" $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-compose

# compose/dev.yml end to end; skips without a Docker engine (`pinclip engine run -- make test-compose`).
test-compose: venv
	$(BIN)/python -m pytest -m compose $(PYTEST_ARGS)

# Integration tests only, against services you started with `make services-up`.
test-integration: venv
	@eval "$$($(BIN)/pinclip services env)" && $(BIN)/python -m pytest -m integration $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: venv
	$(BIN)/python bench/encoder.py

services-up: venv
	$(BIN)/pinclip services up

services-down: venv
	$(BIN)/pinclip services down

services-status: venv
	$(BIN)/pinclip services status

clean:
	-$(BIN)/pinclip services down
	rm -rf $(VENV) var

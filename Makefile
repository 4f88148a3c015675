# The two set-up commands of the README, and their helpers.
# Each installs what it needs (system packages included) and is safe to re-run.

SHELL := /bin/bash
PY := .venv/bin/python

.PHONY: test demo demo-down setup services bench

setup:
	bash scripts/install-system.sh

services: setup
	bash scripts/services.sh start all

test: services
	$(PY) -m pytest $(PYTEST_ARGS)

demo: services
	bash scripts/demo.sh up

demo-down:
	bash scripts/demo.sh down

bench: services
	for b in bench/*_bench.py; do $(PY) $$b || exit 1; done

# The two set-up commands of the README, and their helpers.
# Each installs what it needs (system packages included) and is safe to re-run.

SHELL := /bin/bash
PY := .venv/bin/python

.PHONY: test demo demo-down setup services bench mutation

setup:
	bash scripts/install-system.sh

services: setup
	bash scripts/services.sh start all

# Three workers: the shared-engine tests run in order on one, the Swarm tests (a private engine) on another
# (tests/conftest.py), the rest spread beside them.
test: services
	$(PY) -m pytest -n 3 --durations=25 $(PYTEST_ARGS)

demo: services
	bash scripts/demo.sh up

demo-down:
	bash scripts/demo.sh down

# Benchmarks print figures (and ratios to the peer each names); docs/benchmarks.md keeps them.
BENCHES := startup_bench layout_bench render_bench images_bench deploy_bench storefront_bench hq_bench hq_single_bench agent_sync agent_forward agent_idle

bench: services
	for b in $(BENCHES); do echo "== $$b"; $(PY) bench/$$b.py || exit 1; done

# Mutation testing of the critical modules (not part of `make test`; see docs/testing.md).
# MODULES=hq.risk limits the run; each module is mutated against only the tests that cover it.
mutation: setup
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test,mutation]'
	nice -n 10 $(PY) scripts/mutation.py $(MODULES)

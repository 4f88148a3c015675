#!/usr/bin/env bash
# The README's demo: a local HQ with its registry and one branded sub-site.
#   scripts/demo.sh up|down      (make demo / make demo-down)
# `make demo` has already installed packages and started the services.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m demo "${1:-up}" --root "${KITCTL_DEMO_DIR:-.demo}"

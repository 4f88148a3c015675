#!/usr/bin/env bash
# Refresh the dependency locks from pyproject.toml (see docs/security.md, "Supply chain"):
#
#   requirements.lock      what the kit runs with: the images install exactly this
#                          (--require-hashes --no-index), pip and setuptools included
#   requirements-dev.lock  the same pins plus the test extra and the build backend:
#                          what scripts/install-system.sh installs into .venv
#
#   scripts/lock.sh                 # re-resolve within pyproject's bounds, keeping current pins
#   scripts/lock.sh --upgrade       # move every pin to the newest release allowed
#   scripts/lock.sh --upgrade-package NAME [...]
#
# uv resolves (--universal: one lock valid on every platform, markers kept) and
# records the sha256 of every file of every pinned release. uv itself runs from a
# throwaway virtualenv, pinned here; it is not a dependency of the kit.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
UV_VERSION=${UV_VERSION:-0.13.9}
PYTHON_VERSION=3.11   # the images' Python (Debian bookworm)

extra=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --upgrade) extra+=(--upgrade) ;;
    --upgrade-package) extra+=(--upgrade-package "${2:?--upgrade-package needs a name}"); shift ;;
    *) printf 'usage: %s [--upgrade | --upgrade-package NAME ...]\n' "$0" >&2; exit 2 ;;
  esac
  shift
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check "uv==$UV_VERSION"
uv=("$work/venv/bin/uv" pip compile --quiet --universal --python-version "$PYTHON_VERSION" --generate-hashes
    --no-strip-markers --custom-compile-command "scripts/lock.sh")

cd "$REPO"
"${uv[@]}" "${extra[@]}" pyproject.toml scripts/lock-image-tools.in -o requirements.lock
"${uv[@]}" --extra test pyproject.toml scripts/lock-build-backend.in -c requirements.lock -o requirements-dev.lock
printf 'requirements.lock: %s pins; requirements-dev.lock: %s pins\n' \
  "$(grep -c '==' requirements.lock)" "$(grep -c '==' requirements-dev.lock)"

#!/usr/bin/env bash
# Install what kitctl's tests, benchmarks and demo need on a Debian 12 host,
# and the project itself into .venv. Idempotent: present packages are skipped,
# `apt-get update` runs only when something is missing.
#
#   scripts/install-system.sh            # system packages + .venv
#   scripts/install-system.sh --no-venv  # system packages only
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="${KITCTL_VENV:-$REPO/.venv}"
PACKAGES=(
  docker.io          # dockerd 20.10 (started by scripts/services.sh)
  debootstrap        # the base image, without any image registry
  docker-registry    # authenticated registry on 127.0.0.1:5000
  apache2-utils      # htpasswd (bcrypt) for the registry
  openssh-server     # loopback sshd: the ssh:// deploy path
  openssh-client     # ssh-keygen
  postgresql         # PostgreSQL 15 for tests
  chromium           # browser tests (headless)
  chromium-driver
  docker-compose     # v1, the peer the benchmarks compare with
  wrk                # HQ's load benchmarks (bench/hq_wrk.py, hq_single_bench.py)
  caddy              # render tests serve the rendered Caddyfile with the real proxy
  fonts-noto-cjk     # Chinese text in browser screenshots
  prometheus         # promtool checks the agent's /metrics
  python3-venv
  curl
  openssl
  ca-certificates
)
WITH_VENV=1
case "${1:-}" in
  "") ;;
  --no-venv) WITH_VENV=0 ;;
  *) echo "usage: $0 [--no-venv]" >&2; exit 2 ;;
esac

die() { printf 'error: %s\n' "$*" >&2; exit 1; }
say() { printf '%s\n' "$*"; }

[[ -r /etc/debian_version ]] || die "this script installs Debian packages; Debian 12 (bookworm) expected"

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'; }

missing=()
for pkg in "${PACKAGES[@]}"; do
  installed "$pkg" || missing+=("$pkg")
done

if ((${#missing[@]})); then
  [[ $(id -u) -eq 0 ]] || die "missing packages (${missing[*]}); run as root to install them"
  say "installing: ${missing[*]}"
  log=$(mktemp)
  trap 'rm -f "$log"' EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >"$log" 2>&1 || { tail -n 5 "$log" >&2; die "apt-get update failed"; }
  # no services started by package scripts: scripts/services.sh starts its own
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created_policy=1; fi
  if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
    [[ $created_policy -eq 1 ]] && rm -f "$policy"
    grep -E '^(E:|dpkg: error)' "$log" | tail -n 5 >&2 || tail -n 5 "$log" >&2
    die "apt-get install failed for: ${missing[*]}"
  fi
  [[ $created_policy -eq 1 ]] && rm -f "$policy"
else
  say "system packages: all present"
fi

if [[ $WITH_VENV -eq 1 ]]; then
  if [[ ! -x $VENV/bin/python ]]; then
    say "creating $VENV"
    python3 -m venv "$VENV" || die "python3 -m venv $VENV failed"
  fi
  say "installing kitctl[test] into $VENV from requirements-dev.lock"
  log=$(mktemp)
  # every dependency at its locked version and hash (scripts/lock.sh refreshes the lock), hatchling
  # among them: the build backend, so the editable install and image builds need no fresh build env
  pip=("$VENV/bin/pip" install -q --disable-pip-version-check)
  if ! "${pip[@]}" --require-hashes -r "$REPO/requirements-dev.lock" >"$log" 2>&1 \
     || ! "${pip[@]}" --no-deps --no-build-isolation -e "$REPO" >>"$log" 2>&1; then
    grep -E 'ERROR|error:' "$log" | tail -n 5 >&2 || tail -n 5 "$log" >&2
    rm -f "$log"
    die "installing from requirements-dev.lock failed"
  fi
  rm -f "$log"
  say "ready: $VENV/bin/python -m pytest"
fi

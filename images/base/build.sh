#!/usr/bin/env bash
# Build the base image kitctl/base:bookworm without any image registry:
# debootstrap a minimal Debian bookworm (python3, python3-venv, ca-certificates,
# tini) from the mirror apt already uses here, then `docker import` it.
#
#   images/base/build.sh [--force] [--tag TAG]
#
# Skips the work when the tag already exists, unless --force.
set -euo pipefail

TAG="kitctl/base:bookworm"
FORCE=0
while [[ $# -gt 0 ]]; do
  case $1 in
    --force) FORCE=1 ;;
    --tag) TAG=${2:?--tag needs a value}; shift ;;
    *) printf 'usage: %s [--force] [--tag TAG]\n' "$0" >&2; exit 2 ;;
  esac
  shift
done

die() { printf 'error: %s\n' "$*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || die "debootstrap needs root"
command -v debootstrap >/dev/null || die "debootstrap not found; run scripts/install-system.sh"
command -v docker >/dev/null || die "docker CLI not found; run scripts/install-system.sh"
docker info >/dev/null 2>&1 || die "Docker engine not reachable; run scripts/services.sh start docker"

if [[ $FORCE -eq 0 ]] && docker image inspect "$TAG" >/dev/null 2>&1; then
  printf '%s: present (use --force to rebuild)\n' "$TAG"; exit 0
fi

# The mirror apt uses on this machine (deb822 URIs: or one-line deb entries).
apt_mirror() {
  local suite=$1 uri
  uri=$(grep -hs -B3 -A3 "Suites:.*\b$suite\b" /etc/apt/sources.list.d/*.sources 2>/dev/null \
        | sed -n 's/^URIs:[[:space:]]*//p' | head -1)
  if [[ -z $uri ]]; then
    uri=$(grep -hs "^deb[[:space:]].*[[:space:]]$suite[[:space:]]" /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
          | awk '{for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' | head -1)
  fi
  printf '%s' "${uri:-http://deb.debian.org/debian}"
}
MIRROR=${DEBIAN_MIRROR:-$(apt_mirror bookworm)}
SECURITY=${DEBIAN_SECURITY_MIRROR:-$(apt_mirror bookworm-security)}
[[ $SECURITY == "$MIRROR" || -z $SECURITY ]] && SECURITY=""

WORK=$(mktemp -d /var/tmp/kitctl-base.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
ROOT="$WORK/rootfs"

printf 'debootstrap bookworm (minbase) from %s ...\n' "$MIRROR"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,tini \
  bookworm "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
  || { tail -n 20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }

# apt sources inside the image, so derived images can apt-get install.
{
  printf 'deb %s bookworm main\n' "$MIRROR"
  printf 'deb %s bookworm-updates main\n' "$MIRROR"
  [[ -n $SECURITY ]] && printf 'deb %s bookworm-security main\n' "$SECURITY"
} > "$ROOT/etc/apt/sources.list"
# keep images small: no recommends, no docs, no caches
cat > "$ROOT/etc/apt/apt.conf.d/90kitctl" <<'CONF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
CONF
cat > "$ROOT/etc/dpkg/dpkg.cfg.d/90kitctl-nodoc" <<'CONF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
CONF
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/cache/apt/archives/*.deb \
       "$ROOT"/usr/share/doc/*/changelog* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/* \
       "$ROOT"/var/log/*.log "$ROOT"/var/log/apt/*
: > "$ROOT/etc/machine-id"

printf 'docker import %s ...\n' "$TAG"
tar --numeric-owner -C "$ROOT" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV DEBIAN_FRONTEND=noninteractive' \
  --change 'ENTRYPOINT ["/usr/bin/tini", "--"]' \
  --change 'CMD ["/bin/bash"]' \
  --message "debootstrap --variant=minbase bookworm + python3 python3-venv ca-certificates tini" \
  - "$TAG" >/dev/null
printf '%s: built (%s)\n' "$TAG" "$(docker image inspect -f '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1/1e6}')"

#!/usr/bin/env bash
# Start, stop or report the real services the tests and the demo use:
# the Docker engine, an authenticated image registry, a loopback sshd that
# reaches this machine's engine, and a throwaway PostgreSQL cluster.
#
#   scripts/services.sh start|stop|restart|status [docker|registry|sshd|postgres|all]
#
# Idempotent: a service already answering is left alone. State, keys and logs
# live under $KITCTL_STATE_DIR (default /var/lib/kitctl-services for root,
# ~/.cache/kitctl-services otherwise), never in the repository.
set -euo pipefail

if [[ $(id -u) -eq 0 ]]; then
  STATE="${KITCTL_STATE_DIR:-/var/lib/kitctl-services}"
else
  STATE="${KITCTL_STATE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kitctl-services}"
fi
LOGS="$STATE/logs"
REGISTRY_ADDR="${KITCTL_REGISTRY_ADDR:-127.0.0.1:5000}"
SSHD_PORT="${KITCTL_SSHD_PORT:-2222}"
PG_PORT="${KITCTL_PG_PORT:-55432}"
PG_BIN="${KITCTL_PG_BIN:-/usr/lib/postgresql/15/bin}"
DOCKER_SOCK="/var/run/docker.sock"

say()  { printf '%s\n' "$*"; }
die()  { printf 'error: %s\n' "$*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 not found; run scripts/install-system.sh"; }

prepare_state() {
  # 0711: the postgres user must traverse to its own sub-directory, nobody may list.
  mkdir -p "$STATE" "$LOGS"
  chmod 0711 "$STATE"
  chmod 0700 "$LOGS"
}

pid_alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local secs=$1 what=$2; shift 2
  local i
  for ((i = 0; i < secs * 5; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  return 1
}

stop_pidfile() {  # stop_pidfile PIDFILE NAME
  local pidfile=$1 name=$2 pid
  if ! pid_alive "$pidfile"; then say "$name: not running (not started by this script)"; rm -f "$pidfile"; return 0; fi
  pid=$(cat "$pidfile")
  kill "$pid"
  wait_for 20 "$name exit" bash -c "! kill -0 $pid" || die "$name (pid $pid) did not stop within 20 s"
  rm -f "$pidfile"
  say "$name: stopped"
}

# ---------------------------------------------------------------- docker
docker_answers() { curl -sf --unix-socket "$DOCKER_SOCK" http://localhost/_ping >/dev/null 2>&1; }

docker_start() {
  if docker_answers; then say "docker: already running"; return 0; fi
  need dockerd
  rm -f "$DOCKER_SOCK"
  # --iptables=false: no NAT rules on this host; published ports use docker-proxy.
  setsid dockerd --iptables=false --host "unix://$DOCKER_SOCK" \
    --pidfile "$STATE/dockerd.pid" >"$LOGS/dockerd.log" 2>&1 < /dev/null &
  wait_for 60 "docker" docker_answers \
    || die "dockerd did not answer within 60 s; see $LOGS/dockerd.log"
  say "docker: started (log $LOGS/dockerd.log)"
}
docker_stop()   { stop_pidfile "$STATE/dockerd.pid" docker; }
docker_status() { if docker_answers; then say "docker: running ($DOCKER_SOCK)"; else say "docker: stopped"; return 1; fi; }

# ---------------------------------------------------------------- registry
REG="$STATE/registry"

registry_code() { curl -s -o /dev/null -w '%{http_code}' "http://$REGISTRY_ADDR/v2/" 2>/dev/null || true; }
registry_answers() { [[ $(registry_code) == 401 ]]; }

registry_configure() {
  mkdir -p "$REG/data"
  chmod 0700 "$REG"
  if [[ ! -s $REG/admin.password ]]; then
    (umask 077; openssl rand -hex 24 > "$REG/admin.password")
  fi
  chmod 0600 "$REG/admin.password"
  printf 'admin\n' > "$REG/admin.username"
  # bcrypt, as docker-registry's htpasswd backend requires; password via stdin.
  # With KITCTL_REGISTRY_HTPASSWD the file is HQ's (one entry per licence):
  # the admin entry is added to it, the licensees' entries are kept.
  if [[ -n ${KITCTL_REGISTRY_HTPASSWD:-} ]]; then
    mkdir -p "$(dirname "$KITCTL_REGISTRY_HTPASSWD")"
    [[ -f $KITCTL_REGISTRY_HTPASSWD ]] || (umask 077; : > "$KITCTL_REGISTRY_HTPASSWD")
    htpasswd -iB "$KITCTL_REGISTRY_HTPASSWD" admin < "$REG/admin.password" 2>/dev/null \
      || die "htpasswd failed to update $KITCTL_REGISTRY_HTPASSWD"
    ln -sfn "$KITCTL_REGISTRY_HTPASSWD" "$REG/htpasswd"
  else
    rm -f "$REG/htpasswd"
    (umask 077; htpasswd -iBn admin < "$REG/admin.password" > "$REG/htpasswd" 2>/dev/null) \
      || die "htpasswd failed to write $REG/htpasswd"
  fi
  if [[ ! -s $REG/http.secret ]]; then (umask 077; openssl rand -hex 32 > "$REG/http.secret"); fi
  (umask 077; cat > "$REG/config.yml" <<YAML
version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $REG/data
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
  secret: $(cat "$REG/http.secret")
auth:
  htpasswd:
    realm: kitctl-registry
    path: $REG/htpasswd
YAML
)
}

registry_start() {
  if registry_answers; then say "registry: already running on $REGISTRY_ADDR"; return 0; fi
  need docker-registry; need htpasswd; need openssl
  [[ -n $(registry_code | tr -d 0) ]] && die "something else answers on $REGISTRY_ADDR"
  registry_configure
  setsid docker-registry serve "$REG/config.yml" >"$LOGS/registry.log" 2>&1 < /dev/null &
  echo $! > "$REG/registry.pid"
  wait_for 30 "registry" registry_answers \
    || die "registry did not answer on $REGISTRY_ADDR within 30 s; see $LOGS/registry.log"
  say "registry: started on $REGISTRY_ADDR (user admin, password in $REG/admin.password)"
}
registry_stop()   { stop_pidfile "$REG/registry.pid" registry; }
registry_status() { if registry_answers; then say "registry: running on $REGISTRY_ADDR (auth required)"; else say "registry: stopped"; return 1; fi; }

# ---------------------------------------------------------------- sshd
SSHD="$STATE/sshd"
SSH_MARK_BEGIN="# >>> kitctl-services sshd $SSHD_PORT (managed by scripts/services.sh) >>>"
SSH_MARK_END="# <<< kitctl-services sshd $SSHD_PORT <<<"

sshd_answers() { (exec 3<>"/dev/tcp/127.0.0.1/$SSHD_PORT" && head -c 4 <&3 | grep -q SSH) 2>/dev/null; }

sshd_configure() {
  mkdir -p "$SSHD" /run/sshd
  chmod 0700 "$SSHD"
  [[ -s $SSHD/host_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C kitctl-services-host -f "$SSHD/host_ed25519"
  [[ -s $SSHD/client_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C kitctl-services-client -f "$SSHD/client_ed25519"
  chmod 0600 "$SSHD/host_ed25519" "$SSHD/client_ed25519"
  cp "$SSHD/client_ed25519.pub" "$SSHD/authorized_keys"
  chmod 0600 "$SSHD/authorized_keys"
  cat > "$SSHD/sshd_config" <<CONF
# Loopback-only sshd for tests: key login only, as the user running it.
Port $SSHD_PORT
ListenAddress 127.0.0.1
HostKey $SSHD/host_ed25519
PidFile $SSHD/sshd.pid
AuthorizedKeysFile $SSHD/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UsePAM no
# the state dir may sit below a world-writable parent (e.g. /tmp)
StrictModes no
AllowTcpForwarding yes
X11Forwarding no
PrintMotd no
LogLevel INFO
CONF
  ssh_client_setup
}

ssh_client_setup() {
  # docker-py's paramiko transport reads ~/.ssh/config (IdentityFile) and
  # ~/.ssh/known_hosts (RejectPolicy for unknown hosts): register both.
  local home_ssh="$HOME/.ssh" cfg known hostline
  cfg="$home_ssh/config"; known="$home_ssh/known_hosts"
  mkdir -p "$home_ssh"; chmod 0700 "$home_ssh"
  touch "$cfg" "$known"; chmod 0600 "$cfg"
  ssh_client_forget
  prune_stale_ssh_blocks "$cfg"
  # paramiko matches Host by name only, so the key is offered to 127.0.0.1 on any
  # port; IdentityFile entries accumulate, so instances on other ports coexist.
  {
    printf '%s\n' "$SSH_MARK_BEGIN"
    printf 'Host 127.0.0.1\n    IdentityFile %s\n' "$SSHD/client_ed25519"
    printf '%s\n' "$SSH_MARK_END"
    cat "$cfg"
  } > "$cfg.new" && mv "$cfg.new" "$cfg"
  chmod 0600 "$cfg"
  ssh-keygen -q -R "[127.0.0.1]:$SSHD_PORT" -f "$known" >/dev/null 2>&1 || true
  rm -f "$known.old"
  hostline="[127.0.0.1]:$SSHD_PORT $(cut -d' ' -f1-2 "$SSHD/host_ed25519.pub")"
  printf '%s\n' "$hostline" >> "$known"
}

ssh_client_forget() {
  # Remove this instance's ~/.ssh/config block and known_hosts entry.
  local cfg="$HOME/.ssh/config"
  if [[ -f $cfg ]] && grep -qF "$SSH_MARK_BEGIN" "$cfg"; then
    sed -i "\|$SSH_MARK_BEGIN|,\|$SSH_MARK_END|d" "$cfg"
  fi
  [[ -f $HOME/.ssh/known_hosts ]] && ssh-keygen -q -R "[127.0.0.1]:$SSHD_PORT" -f "$HOME/.ssh/known_hosts" >/dev/null 2>&1
  rm -f "$HOME/.ssh/known_hosts.old"
  return 0
}

prune_stale_ssh_blocks() {
  # A block naming a key file that no longer exists (state dir deleted) would
  # make paramiko fail for every 127.0.0.1 connection: drop such blocks.
  awk '
    /^# >>> kitctl-services sshd / { inblock = 1; block = $0 "\n"; stale = 0; next }
    inblock && /IdentityFile/ { if (system("test -e \"" $2 "\"") != 0) stale = 1 }
    inblock { block = block $0 "\n"; if (/^# <<< kitctl-services sshd /) { inblock = 0; if (!stale) printf "%s", block }; next }
    { print }
  ' "$1" > "$1.new" && mv "$1.new" "$1" && chmod 0600 "$1"
}

sshd_start() {
  if sshd_answers && pid_alive "$SSHD/sshd.pid"; then say "sshd: already running on 127.0.0.1:$SSHD_PORT"; return 0; fi
  sshd_answers && die "another ssh server answers on 127.0.0.1:$SSHD_PORT"
  need ssh-keygen
  [[ -x /usr/sbin/sshd ]] || die "/usr/sbin/sshd not found; run scripts/install-system.sh"
  sshd_configure
  /usr/sbin/sshd -t -f "$SSHD/sshd_config" || die "sshd rejected its config $SSHD/sshd_config"
  /usr/sbin/sshd -f "$SSHD/sshd_config" -E "$LOGS/sshd.log"
  wait_for 15 "sshd" sshd_answers || die "sshd did not answer on 127.0.0.1:$SSHD_PORT; see $LOGS/sshd.log"
  say "sshd: started on 127.0.0.1:$SSHD_PORT (docker-py: ssh://$(id -un)@127.0.0.1:$SSHD_PORT)"
}
sshd_stop()   { stop_pidfile "$SSHD/sshd.pid" sshd; ssh_client_forget; }
sshd_status() { if sshd_answers; then say "sshd: running on 127.0.0.1:$SSHD_PORT"; else say "sshd: stopped"; return 1; fi; }

# ---------------------------------------------------------------- postgres
PG="$STATE/postgres"

pg_answers() { "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; }
as_pg() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

postgres_start() {
  if pg_answers; then say "postgres: already running on 127.0.0.1:$PG_PORT"; return 0; fi
  [[ -x $PG_BIN/initdb ]] || die "PostgreSQL 15 not found in $PG_BIN; run scripts/install-system.sh"
  mkdir -p "$PG"
  [[ $(id -u) -eq 0 ]] && chown postgres:postgres "$PG"
  chmod 0700 "$PG"
  as_pg test -w "$PG" || die "the postgres user cannot reach $PG (a parent directory is not traversable)"
  if [[ ! -s $PG/data/PG_VERSION ]]; then
    as_pg "$PG_BIN/initdb" -D "$PG/data" -U postgres -A trust --auth-local=trust -E UTF8 --locale=C.UTF-8 \
      >"$PG/initdb.log" 2>&1 || die "initdb failed; see $PG/initdb.log"
    cat > "$PG/data/pg_hba.conf" <<HBA
# throwaway test cluster: trust on loopback only
local all all trust
host  all all 127.0.0.1/32 trust
HBA
  fi
  as_pg "$PG_BIN/pg_ctl" -D "$PG/data" -l "$PG/postgres.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG -c fsync=off" start >/dev/null \
    || die "postgres did not start; see $PG/postgres.log"
  say "postgres: started on 127.0.0.1:$PG_PORT (postgresql://postgres@127.0.0.1:$PG_PORT/postgres)"
}
postgres_stop() {
  if [[ -s $PG/data/postmaster.pid ]] && as_pg "$PG_BIN/pg_ctl" -D "$PG/data" status >/dev/null 2>&1; then
    as_pg "$PG_BIN/pg_ctl" -D "$PG/data" -m fast -w stop >/dev/null; say "postgres: stopped"
  else
    say "postgres: not running (not started by this script)"
  fi
}
postgres_status() { if pg_answers; then say "postgres: running on 127.0.0.1:$PG_PORT"; else say "postgres: stopped"; return 1; fi; }

# ---------------------------------------------------------------- main
usage() { say "usage: $0 start|stop|restart|status [docker|registry|sshd|postgres|all]" >&2; exit 2; }

main() {
  local action=${1:-} target=${2:-all} services s rc=0
  case $action in start|stop|status) ;;
    restart) "$0" stop "$target" && exec "$0" start "$target" ;;
    *) usage ;;
  esac
  case $target in
    all) services=(docker registry sshd postgres) ;;
    docker|registry|sshd|postgres) services=("$target") ;;
    *) usage ;;
  esac
  [[ $action == stop && $target == all ]] && services=(postgres sshd registry docker)
  need curl
  prepare_state
  for s in "${services[@]}"; do
    "${s}_${action}" || rc=1
  done
  return $rc
}

main "$@"

"""HQ as a Swarm service (`kitctl hq deploy --orchestrator swarm`), as plain values: no engine needed.

N instances of the HQ image share nothing but the PostgreSQL database. What each must hold alike (the
signing keys, the vault key, the risk rules, the metrics token) and the database URL travel in one Swarm
secret, a JSON bundle whose name carries a hash of its content (secrets are immutable: a change is a new
secret and a rolling update). Each task unpacks it into a tmpfs of its own (`hq.swarm_task`). The schema
is migrated once, by a one-shot job, before the instances start or roll over; the instances never migrate.
An instance restarts on failure only: one an operator stopped (`docker stop`, exit 0 after SIGTERM) stays
down, serving through the others, until `docker service update --force <name>` (or the next deploy) brings
it back; a crash (a non-zero exit) or a failed health check is still replaced.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from kitctl.deploy.swarm.definitions import MAX_CONFIG_BYTES, STACK_LABEL, FileRef, ServiceDef
from kitcore.errors import InvalidInput

HQ_LABEL = "com.kitctl.hq"  # on every object of one HQ deployment: its name
HQ_PORT = 8600
STATE_TARGET = "hq-state"  # /run/secrets/hq-state in the task (hq.swarm_task.DEFAULT_BUNDLE)
VOLUME_DIR = "/var/lib/kit/hq"  # the image's state volume: an (unused) tmpfs here, so no anonymous volume is made
TASK_DIR = "/tmp/hq"  # each task's own copy of the state, on the /tmp tmpfs (sticky, writable by the task's user)
# What every instance needs alike, relative to the HQ directory; the SQLite file, support bundles and
# application materials are not carried (materials uploaded to one instance stay on it: docs/scale-out.md).
CARRIED = ("keys", "vault.key", "risk-rules.json", "metrics-token", "registry/htpasswd")
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-")


@dataclass(frozen=True)
class HqSwarmOptions:
    hq_dir: Path
    database_url: str = field(repr=False)
    image: str
    replicas: int = 2
    name: str = "kitctl-hq"  # service name, and the name sites reach it by on the network
    network: str = "kitctl-hq"  # attachable overlay; a site joins it with `--hq-network`
    public_url: str | None = None  # default http://<name>:8600
    publish: int | None = None  # a host-mode port (one instance per node): for an outside balancer
    settings: tuple[tuple[str, str], ...] = ()  # further KIT_HQ_* settings, e.g. heartbeat_interval_seconds

    def checked(self) -> "HqSwarmOptions":
        if not 1 <= self.replicas <= 32:
            raise InvalidInput("--replicas must be between 1 and 32")
        for what, value in (("--name", self.name), ("--network", self.network)):
            if not value or len(value) > 48 or not set(value) <= NAME_CHARS or value[0] == "-":
                raise InvalidInput(f"{what} {value!r}: lowercase letters, digits and '-', at most 48")
        if not self.database_url.startswith(("postgresql://", "postgresql+psycopg://", "postgres://")):
            raise InvalidInput("--database-url must be a PostgreSQL URL: instances share nothing but the database")
        if not (self.hq_dir / "keys" / "index.json").is_file():
            raise InvalidInput(f"{self.hq_dir} holds no HQ keys: run `kitctl hq keys init --hq-dir {self.hq_dir}` first")
        return self


@dataclass(frozen=True)
class HqStack:
    state_name: str
    state: bytes = field(repr=False)
    migrate: ServiceDef
    service: ServiceDef
    labels: dict[str, str]


def state_bundle(options: HqSwarmOptions) -> bytes:
    """The secret every task reads. The vault key and the metrics token are made in the HQ directory first
    when it has none: an instance making its own would not read what another encrypted or be scraped alike."""
    _made_once(options.hq_dir / "vault.key", base64.b64encode(os.urandom(32)))  # hq.vault's format
    _made_once(options.hq_dir / "metrics-token", (secrets.token_urlsafe(32) + "\n").encode())
    files: dict[str, str] = {}
    for name in CARRIED:
        path = options.hq_dir / name
        found = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path] if path.is_file() else []
        for item in found:
            files[item.relative_to(options.hq_dir).as_posix()] = base64.b64encode(item.read_bytes()).decode()
    data = json.dumps({"database_url": options.database_url, "files": files}, sort_keys=True).encode()
    if len(data) > MAX_CONFIG_BYTES:
        raise InvalidInput(f"the HQ state ({len(data)} bytes) is larger than a Swarm secret may be "
                           f"({MAX_CONFIG_BYTES}): retire old keys")
    return data


def _made_once(path: Path, data: bytes) -> None:
    from kitcore.licence.keys import write_private

    if not path.exists():
        write_private(path, data)


def hq_stack(options: HqSwarmOptions, image_id: str) -> HqStack:
    """The state secret, the migration job and the instances' service."""
    state = state_bundle(options)
    state_name = f"{options.name}_state_{hashlib.sha256(state).hexdigest()[:16]}"
    labels = {STACK_LABEL: options.name, HQ_LABEL: options.name}
    env = (("KIT_HQ_DIR", TASK_DIR), ("KIT_HQ_BIND", f"0.0.0.0:{HQ_PORT}"),
           ("KIT_HQ_PUBLIC_URL", options.public_url or f"http://{options.name}:{HQ_PORT}"), ("KIT_HQ_MIGRATE", "false"),
           *((f"KIT_HQ_{k.upper()}", v) for k, v in options.settings))
    secret = (FileRef(state_name, STATE_TARGET, 10001, 10001, 0o400),)
    probe = ("CMD", "python", "-c", f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{HQ_PORT}/healthz', "
             "timeout=3)")
    common = dict(image=image_id, entrypoint=None, environment=env, configs=(), secrets=secret, volumes=(),
                  tmpfs=(VOLUME_DIR, "/tmp"), networks=(options.network,), constraints=(), user="10001:10001",
                  read_only=True, cap_drop=("ALL",))
    service = ServiceDef(
        name=options.name, service=options.name, replicas=options.replicas,
        command=("python", "-m", "hq.swarm_task", "serve"), healthcheck=(probe, 2.0, 3.0, 5, 60.0),
        labels=tuple(sorted((labels | {"com.kitctl.service": "hq", "io.kitctl.image": options.image}).items())),
        ports=((options.publish, HQ_PORT, "tcp"),) if options.publish else (), order="start-first",
        restart="on-failure", **common)
    migrate = ServiceDef(
        name=f"{options.name}_migrate", service=f"{options.name}-migrate", replicas=1,
        command=("python", "-m", "hq.swarm_task", "migrate"), healthcheck=None,
        labels=tuple(sorted((labels | {"com.kitctl.service": "hq-migrate"}).items())), ports=(), order="stop-first",
        **common)
    return HqStack(state_name, state, migrate, service, labels)

"""Read the rendered `compose.yaml`: the subset kitctl deploys, as plain values.

Anything outside the subset is refused with one line naming the key, so a
template change that needs a new feature fails loudly instead of being
silently ignored on a licensee's host.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kitctl.deploy.units import duration_seconds, size_bytes
from kitcore.errors import InvalidInput
from kitcore.sitedir import SiteDir, project_name as site_project

SITE_LABEL = "com.kitctl.site"  # the site id the renderer writes on every service

SERVICE_KEYS = {
    "image", "command", "entrypoint", "environment", "env_file", "volumes", "ports",
    "secrets", "depends_on", "healthcheck", "restart", "deploy", "labels", "networks",
    "user", "read_only", "tmpfs", "extra_hosts", "cap_drop", "cap_add", "security_opt",
}
TOP_KEYS = {"name", "version", "services", "volumes", "networks", "secrets"}
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
RESTART = re.compile(r"^(no|always|unless-stopped|on-failure(:\d+)?)\Z")
NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*\Z")
PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*\Z")
MAX_COMPOSE_BYTES = 1024 * 1024
MAX_REPLICAS = 32


@dataclass(frozen=True)
class Mount:
    kind: str  # "volume" | "bind" | "secret" (a file copied in as the service's user, see kitctl.deploy.secret_copy)
    source: str  # volume key, or absolute host path
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class Port:
    host_ip: str
    host_port: int | None
    container_port: int
    protocol: str = "tcp"


@dataclass(frozen=True)
class Healthcheck:
    test: tuple[str, ...]
    interval: float = 30.0
    timeout: float = 30.0
    retries: int = 3
    start_period: float = 0.0

    def deadline_seconds(self) -> float:
        """How long a container may take to turn healthy before it is failed."""
        return self.start_period + (self.interval + self.timeout) * (self.retries + 1) + 5.0


@dataclass(frozen=True)
class Dependency:
    service: str
    condition: str = "service_started"


@dataclass(frozen=True)
class Service:
    name: str
    image: str
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    environment: tuple[tuple[str, str], ...] = ()
    mounts: tuple[Mount, ...] = ()
    ports: tuple[Port, ...] = ()
    depends_on: tuple[Dependency, ...] = ()
    healthcheck: Healthcheck | None = None
    restart: str = "no"
    replicas: int = 1  # `deploy.replicas`: tasks on a Swarm (kitctl.deploy.swarm); one container on a single engine
    cpus: float | None = None
    memory: int | None = None
    labels: tuple[tuple[str, str], ...] = ()
    networks: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (network key, extra aliases)
    user: str | None = None
    read_only: bool = False
    tmpfs: tuple[str, ...] = ()
    extra_hosts: tuple[str, ...] = ()  # "host:ip"
    cap_drop: tuple[str, ...] = ()
    cap_add: tuple[str, ...] = ()
    security_opt: tuple[str, ...] = ()

    def dependency_names(self) -> list[str]:
        return [d.service for d in self.depends_on]

    def secrets(self) -> list[Mount]:
        return [m for m in self.mounts if m.kind == "secret"]

    def writes_named_volume(self) -> bool:
        return any(m.kind == "volume" and not m.read_only for m in self.mounts)


@dataclass(frozen=True)
class Resource:
    """A top-level network or volume: its compose key, its engine name and (volumes) its local driver options."""

    key: str
    name: str
    external: bool = False
    driver_opts: tuple[tuple[str, str], ...] = ()  # `driver: local` options, e.g. a bind onto a data directory

    @property
    def bind_device(self) -> str | None:
        """The host directory a `local` volume binds (render's --data-dir), which must exist before it is used."""
        opts = dict(self.driver_opts)
        return opts.get("device") if "bind" in opts.get("o", "").split(",") else None


@dataclass(frozen=True)
class Project:
    name: str
    working_dir: Path
    config_file: Path
    services: dict[str, Service] = field(default_factory=dict)
    networks: dict[str, Resource] = field(default_factory=dict)
    volumes: dict[str, Resource] = field(default_factory=dict)
    raw_services: dict[str, Any] = field(default_factory=dict)  # as parsed, for the config hash
    site_id: str | None = None  # from the services' `com.kitctl.site`; None for a stack kitctl did not render
    adopted_volumes: frozenset[str] = frozenset()  # engine names kept from the old folder-named project

    @property
    def legacy_name(self) -> str:
        """The project the site ran as before it was named after its site id: its folder's name."""
        return _dir_project_name(self.working_dir)

def load_project(path: Path, project_name: str | None = None) -> Project:
    """Parse `path` (a compose file, or a site directory holding compose.yaml)."""
    import yaml

    config_file = SiteDir(path).compose if path.is_dir() else path
    raw = read_bounded(config_file, MAX_COMPOSE_BYTES)
    try:
        data = yaml.load(raw, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # libyaml: 10× faster
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise InvalidInput(f"{config_file} is not valid YAML{where}") from None
    project = parse_project(data, config_file.resolve().parent, config_file.resolve(), project_name)
    return with_adopted_volumes(project)


def read_bounded(path: Path, limit: int, where: str = "", what: str = "") -> bytes:
    """A file's bytes, or one line when it cannot be read or is larger than `limit`."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"{where}cannot read {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise InvalidInput(f"{where}{path} is larger than {what}{limit} bytes")
    return data


def with_adopted_volumes(project: Project) -> Project:
    """Volumes the site kept from its old folder-named project (kitctl.deploy.identity) keep their engine names."""
    import dataclasses
    import json

    record = SiteDir(project.working_dir).adopted
    if not record.is_file():
        return project
    try:
        kept = json.loads(record.read_text())["volumes"]
    except (OSError, ValueError, KeyError, TypeError):
        raise InvalidInput(f"{record} is not a valid adoption record") from None
    volumes = {key: dataclasses.replace(vol, name=str(kept[key])) if key in kept else vol
               for key, vol in project.volumes.items()}
    return dataclasses.replace(project, volumes=volumes, adopted_volumes=frozenset(str(v) for v in kept.values()))


def parse_project(data: Any, working_dir: Path, config_file: Path, project_name: str | None = None) -> Project:
    """The whole file → Project; InvalidInput on the first unsupported or wrong entry."""
    _require(isinstance(data, dict), "compose file: top level must be a mapping")
    _no_unknown(data, TOP_KEYS, "compose file")
    services_raw = data.get("services")
    site_id = _site_id(services_raw)
    name = project_name or data.get("name") or (site_project(site_id) if site_id else _dir_project_name(working_dir))
    _require(isinstance(name, str) and bool(PROJECT_NAME.match(name)),
             f"project name {name!r} must be lowercase letters, digits, '-' or '_'")
    networks = _resources(data.get("networks"), "networks", name)
    if not networks or "default" not in networks:
        networks["default"] = Resource("default", f"{name}_default")
    volumes = _resources(data.get("volumes"), "volumes", name)
    secrets = _secrets(data.get("secrets"), working_dir)
    _require(isinstance(services_raw, dict) and bool(services_raw), "compose file: `services` must be a non-empty mapping")
    services = {}
    for svc_name, body in services_raw.items():
        _require(isinstance(svc_name, str) and bool(NAME.match(svc_name)), f"service name {svc_name!r} is not valid")
        services[svc_name] = _service(svc_name, unescape(body, f"services.{svc_name}"), working_dir, volumes, networks, secrets)
    _check_dependencies(services)
    return Project(name, working_dir, config_file, services, networks, volumes, dict(services_raw), site_id)


def _site_id(services_raw: Any) -> str | None:
    """The one site id the services carry, None when none does (a stack kitctl did not render)."""
    if not isinstance(services_raw, dict):
        return None
    ids = {str(body["labels"][SITE_LABEL]) for body in services_raw.values()
           if isinstance(body, dict) and isinstance(body.get("labels"), dict) and SITE_LABEL in body["labels"]}
    _require(len(ids) <= 1, f"compose file: services carry different site ids ({', '.join(sorted(ids))})")
    return ids.pop() if ids else None


INTERPOLATION = re.compile(r"\$(?!\$)")


def unescape(value: Any, where: str) -> Any:
    """Compose's `$$` → `$`; a lone `$` (variable interpolation) is refused: render resolves values."""
    if isinstance(value, str):
        if INTERPOLATION.search(value.replace("$$", "")):
            raise InvalidInput(f"{where}: variable interpolation ($VAR) is not supported; write `$$` for a literal $")
        return value.replace("$$", "$")
    if isinstance(value, list):
        return [unescape(v, where) for v in value]
    if isinstance(value, dict):
        return {k: unescape(v, f"{where}.{k}") for k, v in value.items()}
    return value


def _dir_project_name(directory: Path) -> str:
    return re.sub(r"[^a-z0-9_-]", "", directory.name.lower()) or "kitctl"


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise InvalidInput(message)


def _no_unknown(mapping: dict, allowed: set[str], where: str) -> None:
    for key in mapping:
        if isinstance(key, str) and key.startswith("x-"):
            continue
        if key not in allowed:
            raise InvalidInput(f"{where}: `{key}` is not supported by kitctl up (supported: {', '.join(sorted(allowed))})")


def _resources(raw: Any, kind: str, project: str) -> dict[str, Resource]:
    if raw is None:
        return {}
    _require(isinstance(raw, dict), f"top-level `{kind}` must be a mapping")
    allowed = {"external", "name", "labels"} | ({"driver", "driver_opts"} if kind == "volumes" else set())
    found = {}
    for key, body in raw.items():
        _require(isinstance(key, str) and bool(NAME.match(key)), f"{kind}: name {key!r} is not valid")
        body = body or {}
        _require(isinstance(body, dict), f"{kind}.{key} must be a mapping")
        _no_unknown(body, allowed, f"{kind}.{key}")
        external = bool(body.get("external", False))
        name = body.get("name") or (key if external else f"{project}_{key}")
        found[key] = Resource(key, str(name), external, _driver_opts(body, f"{kind}.{key}"))
    return found


def _driver_opts(body: dict, where: str) -> tuple[tuple[str, str], ...]:
    """Only the `local` driver, with string options (type, o, device): a volume on a chosen host directory."""
    if "driver" not in body and "driver_opts" not in body:
        return ()
    _require(body.get("driver", "local") == "local", f"{where}.driver: only `local` is supported")
    opts = body.get("driver_opts") or {}
    _require(isinstance(opts, dict) and all(isinstance(v, str) for v in opts.values()),
             f"{where}.driver_opts must map names to strings")
    _no_unknown(opts, {"type", "o", "device"}, f"{where}.driver_opts")
    device = opts.get("device")
    _require(device is None or (device.startswith("/") and ".." not in device.split("/")),
             f"{where}.driver_opts.device must be an absolute path without '..'")
    return tuple(sorted(opts.items()))


def _secrets(raw: Any, working_dir: Path) -> dict[str, Path]:
    if raw is None:
        return {}
    _require(isinstance(raw, dict), "top-level `secrets` must be a mapping")
    found = {}
    for key, body in raw.items():
        _require(isinstance(body, dict) and set(body) == {"file"},
                 f"secrets.{key}: only `file:` secrets are supported")
        found[key] = (working_dir / str(body["file"])).resolve()
    return found


def _service(name: str, body: Any, working_dir: Path, volumes: dict, networks: dict, secrets: dict) -> Service:
    where = f"services.{name}"
    _require(isinstance(body, dict), f"{where} must be a mapping")
    _no_unknown(body, SERVICE_KEYS, where)
    image = body.get("image")
    _require(isinstance(image, str) and bool(image.strip()), f"{where}: `image` is required (kitctl up does not build)")
    env = dict(_env_files(body.get("env_file"), working_dir, where))
    env.update(_key_values(body.get("environment"), f"{where}.environment", "="))
    mounts = [_mount(v, working_dir, volumes, f"{where}.volumes") for v in _list(body.get("volumes"), f"{where}.volumes")]
    mounts += [_secret_mount(s, secrets, f"{where}.secrets") for s in _list(body.get("secrets"), f"{where}.secrets")]
    limits = _limits(body.get("deploy"), f"{where}.deploy")
    restart = str(body.get("restart", "no"))
    _require(bool(RESTART.match(restart)), f"{where}.restart: {restart!r} is not no|always|unless-stopped|on-failure[:N]")
    return Service(
        name=name,
        image=image.strip(),
        command=_argv(body.get("command"), f"{where}.command"),
        entrypoint=_argv(body.get("entrypoint"), f"{where}.entrypoint"),
        environment=tuple(sorted(env.items())),
        mounts=tuple(mounts),
        ports=tuple(_port(p, f"{where}.ports") for p in _list(body.get("ports"), f"{where}.ports")),
        depends_on=_depends(body.get("depends_on"), f"{where}.depends_on"),
        healthcheck=_healthcheck(body.get("healthcheck"), f"{where}.healthcheck"),
        restart=restart,
        replicas=limits.get("replicas", 1),
        cpus=limits.get("cpus"),
        memory=limits.get("memory"),
        labels=tuple(sorted(_key_values(body.get("labels"), f"{where}.labels", "=").items())),
        networks=_service_networks(body.get("networks"), networks, f"{where}.networks"),
        user=None if body.get("user") is None else str(body["user"]),
        read_only=_bool(body.get("read_only", False), f"{where}.read_only"),
        tmpfs=tuple(str(t) for t in _list(body.get("tmpfs"), f"{where}.tmpfs", scalar_ok=True)),
        extra_hosts=_extra_hosts(body.get("extra_hosts"), f"{where}.extra_hosts"),
        cap_drop=_names(body.get("cap_drop"), f"{where}.cap_drop"),
        cap_add=_names(body.get("cap_add"), f"{where}.cap_add"),
        security_opt=_names(body.get("security_opt"), f"{where}.security_opt"),
    )


def _names(raw: Any, where: str) -> tuple[str, ...]:
    """A list of plain words (capabilities, security options such as no-new-privileges:true)."""
    items = tuple(str(v) for v in _list(raw, where))
    _require(all(re.fullmatch(r"[A-Za-z0-9_:=.-]{1,64}", v) for v in items), f"{where}: entries must be plain words")
    return items


def _list(raw: Any, where: str, scalar_ok: bool = False) -> list:
    if raw is None:
        return []
    if scalar_ok and isinstance(raw, str):
        return [raw]
    _require(isinstance(raw, list), f"{where} must be a list")
    return raw


def _bool(raw: Any, where: str) -> bool:
    _require(isinstance(raw, bool), f"{where} must be true or false")
    return raw


def _argv(raw: Any, where: str) -> tuple[str, ...] | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        try:
            return tuple(shlex.split(raw))
        except ValueError as exc:
            raise InvalidInput(f"{where}: {exc}") from None
    _require(isinstance(raw, list) and all(isinstance(a, (str, int, float)) for a in raw), f"{where} must be a string or a list of strings")
    return tuple(str(a) for a in raw)


def _key_values(raw: Any, where: str, sep: str) -> dict[str, str]:
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return {str(k): "" if v is None else _scalar(v) for k, v in raw.items()}
    _require(isinstance(raw, list), f"{where} must be a mapping or a list of KEY{sep}VALUE")
    found = {}
    for item in raw:
        _require(isinstance(item, str) and sep in item, f"{where}: {item!r} is not KEY{sep}VALUE")
        key, value = item.split(sep, 1)
        found[key] = value
    return found


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    _require(isinstance(value, (str, int, float)), f"value {value!r} must be a string or a number")
    return str(value)


def _env_files(raw: Any, working_dir: Path, where: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for entry in _list(raw, f"{where}.env_file", scalar_ok=True):
        _require(isinstance(entry, str), f"{where}.env_file: entries must be paths")
        path = (working_dir / entry).resolve()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            raise InvalidInput(f"{where}.env_file: cannot read {entry}") from None
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            _require("=" in line, f"{where}.env_file: {entry} line {number} is not KEY=VALUE")
            key, value = line.split("=", 1)
            found.append((key.strip(), value.strip()))
    return found


def _mount(raw: Any, working_dir: Path, volumes: dict, where: str) -> Mount:
    if isinstance(raw, str):
        parts = raw.split(":")
        _require(len(parts) in (2, 3), f"{where}: {raw!r} must be SOURCE:TARGET[:ro|rw]")
        mode = parts[2] if len(parts) == 3 else "rw"
        _require(mode in ("ro", "rw"), f"{where}: mode {mode!r} in {raw!r} must be ro or rw")
        source, target, read_only = parts[0], parts[1], mode == "ro"
        kind = "bind" if source.startswith((".", "/", "~")) else "volume"
    elif isinstance(raw, dict):
        _no_unknown(raw, {"type", "source", "target", "read_only"}, where)
        kind = raw.get("type", "volume")
        _require(kind in ("volume", "bind"), f"{where}: type {kind!r} is not supported (volume, bind)")
        source, target = str(raw.get("source", "")), str(raw.get("target", ""))
        read_only = _bool(raw.get("read_only", False), f"{where}.read_only")
    else:
        raise InvalidInput(f"{where}: entries must be strings or mappings")
    _require(target.startswith("/"), f"{where}: target {target!r} must be an absolute path")
    if kind == "volume":
        _require(source in volumes, f"{where}: volume {source!r} is not declared under top-level `volumes`")
        return Mount("volume", source, target, read_only)
    host = (working_dir / Path(source).expanduser()).resolve()
    _require(host.exists(), f"{where}: bind source {source} does not exist")
    return Mount("bind", str(host), target, read_only)


def _secret_mount(raw: Any, secrets: dict[str, Path], where: str) -> Mount:
    if isinstance(raw, dict):
        _no_unknown(raw, {"source", "target"}, where)
        name, target = str(raw.get("source")), raw.get("target")
    else:
        name, target = str(raw), None
    _require(name in secrets, f"{where}: secret {name!r} is not declared under top-level `secrets`")
    _require(secrets[name].is_file(), f"{where}: secret file for {name!r} does not exist")
    target = str(target or name)
    full = target if target.startswith("/") else f"/run/secrets/{target}"
    return Mount("secret", str(secrets[name]), full, True)


PORT = re.compile(r"^(?:(?P<ip>[0-9.]+|\[[0-9a-fA-F:]+\]):)?(?:(?P<host>\d+):)?(?P<cont>\d+)(?:/(?P<proto>tcp|udp))?\Z")


def _port(raw: Any, where: str) -> Port:
    text = str(raw) if isinstance(raw, (str, int)) else None
    _require(text is not None, f"{where}: only the short form HOST_IP:HOST:CONTAINER is supported")
    match = PORT.match(text)
    _require(match is not None, f"{where}: {text!r} is not [HOST_IP:][HOST:]CONTAINER[/tcp|udp]")
    host = int(match["host"]) if match["host"] else None
    container = int(match["cont"])
    for p in (host, container):
        _require(p is None or 1 <= p <= 65535, f"{where}: port {p} is out of range")
    ip = (match["ip"] or "0.0.0.0").strip("[]")
    return Port(ip, host, container, match["proto"] or "tcp")


def _depends(raw: Any, where: str) -> tuple[Dependency, ...]:
    if raw is None:
        return ()
    if isinstance(raw, list):
        return tuple(Dependency(str(s)) for s in raw)
    _require(isinstance(raw, dict), f"{where} must be a list or a mapping")
    found = []
    for svc, body in raw.items():
        body = body or {}
        _require(isinstance(body, dict), f"{where}.{svc} must be a mapping")
        _no_unknown(body, {"condition", "restart", "required"}, f"{where}.{svc}")
        condition = body.get("condition", "service_started")
        _require(condition in CONDITIONS, f"{where}.{svc}: condition {condition!r} is not one of {', '.join(sorted(CONDITIONS))}")
        found.append(Dependency(str(svc), condition))
    return tuple(found)


def _healthcheck(raw: Any, where: str) -> Healthcheck | None:
    if raw is None:
        return None
    _require(isinstance(raw, dict), f"{where} must be a mapping")
    _no_unknown(raw, {"test", "interval", "timeout", "retries", "start_period", "disable"}, where)
    if raw.get("disable"):
        return None
    test = raw.get("test")
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    _require(isinstance(test, list) and bool(test) and all(isinstance(t, str) for t in test), f"{where}.test must be a string or a list")
    if test[0] == "NONE":
        return None
    _require(test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, f"{where}.test must start with CMD or CMD-SHELL")
    retries = raw.get("retries", 3)
    _require(isinstance(retries, int) and retries >= 1, f"{where}.retries must be a positive integer")
    return Healthcheck(
        test=tuple(test),
        interval=duration_seconds(raw.get("interval", "30s"), f"{where}.interval"),
        timeout=duration_seconds(raw.get("timeout", "30s"), f"{where}.timeout"),
        retries=retries,
        start_period=duration_seconds(raw.get("start_period", "0s"), f"{where}.start_period"),
    )


def _limits(raw: Any, where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    _require(isinstance(raw, dict) and set(raw) <= {"resources", "replicas"},
             f"{where}: only `replicas` and `resources.limits` are supported")
    found: dict[str, Any] = {}
    if "replicas" in raw:
        replicas = raw["replicas"]
        _require(isinstance(replicas, int) and not isinstance(replicas, bool) and 1 <= replicas <= MAX_REPLICAS,
                 f"{where}.replicas must be a whole number from 1 to {MAX_REPLICAS}")
        found["replicas"] = replicas
    resources = raw.get("resources") or {}
    _require(isinstance(resources, dict) and set(resources) <= {"limits"}, f"{where}.resources: only `limits` is supported")
    limits = resources.get("limits") or {}
    _require(isinstance(limits, dict), f"{where}.resources.limits must be a mapping")
    _no_unknown(limits, {"cpus", "memory"}, f"{where}.resources.limits")
    if "cpus" in limits:
        try:
            found["cpus"] = float(limits["cpus"])
        except (TypeError, ValueError):
            raise InvalidInput(f"{where}.resources.limits.cpus: {limits['cpus']!r} is not a number") from None
        _require(found["cpus"] > 0, f"{where}.resources.limits.cpus must be positive")
    if "memory" in limits:
        found["memory"] = size_bytes(limits["memory"], f"{where}.resources.limits.memory")
    return found


def _service_networks(raw: Any, networks: dict[str, Resource], where: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    if raw is None:
        return (("default", ()),)
    if isinstance(raw, list):
        raw = {str(n): None for n in raw}
    _require(isinstance(raw, dict) and bool(raw), f"{where} must be a non-empty list or mapping")
    found = []
    for key, body in raw.items():
        _require(key in networks, f"{where}: network {key!r} is not declared under top-level `networks`")
        body = body or {}
        _require(isinstance(body, dict), f"{where}.{key} must be a mapping")
        _no_unknown(body, {"aliases"}, f"{where}.{key}")
        aliases = tuple(str(a) for a in _list(body.get("aliases"), f"{where}.{key}.aliases"))
        found.append((key, aliases))
    return tuple(found)


def _extra_hosts(raw: Any, where: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, dict):
        return tuple(f"{h}:{ip}" for h, ip in raw.items())
    items = _list(raw, where)
    for item in items:
        _require(isinstance(item, str) and ":" in item, f"{where}: {item!r} is not HOST:IP")
    return tuple(items)


def _check_dependencies(services: dict[str, Service]) -> None:
    for svc in services.values():
        for dep in svc.depends_on:
            _require(dep.service in services, f"services.{svc.name}.depends_on: unknown service {dep.service!r}")
            _require(dep.service != svc.name, f"services.{svc.name}.depends_on: a service cannot depend on itself")

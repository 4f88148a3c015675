"""What a plugin may add to the stack: the one rule set the plugin host and render both apply.

A plugin's stack fragment may add services and volumes named after the plugin,
and `PLUGIN_<NAME>_…` variables to the two services that run plugin code. It
can never weaken the core: no core service redefined, no host network, no
privileges, no host paths (so no Docker socket), ports on 127.0.0.1 only, no
core secrets, images only from the kit's namespace (render puts the licence's
registry in front, as for the core images). Every refusal is one line naming
the plugin. The host checks a fragment as the plugin returns it
(`check_fragment`); render checks the same rules again on the rendered
document (`check_rendered_service`), so nothing between the two can slip by.
"""

from __future__ import annotations

import re
from typing import Any, Callable

CORE_SERVICES = frozenset({"proxy", "storefront", "agent", "db", "hq"})
ENV_TARGETS = ("storefront", "agent")  # core services that run plugin code
SERVICE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,40}\Z")
ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,63}\Z")
IMAGE = re.compile(r"^kitctl/[a-z0-9][a-z0-9._-]{0,63}(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?\Z")
DURATION = re.compile(r"^[0-9]{1,5}(?:ms|s|m)\Z")
PORT = re.compile(r"^127\.0\.0\.1:([0-9]{1,5}):([0-9]{1,5})(?:/(tcp|udp))?\Z")
CONDITIONS = ("service_started", "service_healthy")
# What a plugin may give for one of its services; render adds restart, deploy limits and labels.
GIVEN_KEYS = frozenset({"image", "command", "environment", "volumes", "ports", "healthcheck", "depends_on"})
RENDERED_KEYS = GIVEN_KEYS | {"restart", "deploy", "labels"}
PRIVILEGES = frozenset({"privileged", "cap_add", "pid", "network_mode", "devices", "security_opt", "userns_mode", "ipc"})
FORBIDDEN = PRIVILEGES | frozenset({
    "networks", "secrets", "volumes_from", "entrypoint", "user", "env_file", "extra_hosts", "sysctls",
    "cgroup_parent", "container_name", "build",
})
HEALTH_KEYS = frozenset({"test", "interval", "timeout", "retries", "start_period"})
PLUGIN_LIMITS = {"cpus": "0.50", "memory": "256M"}
PLUGIN_LABEL = "com.kitctl.plugin"
MAX_ITEMS = 64


class FragmentRefused(ValueError):
    """A plugin's stack fragment breaks a rule of the core; the message is one line naming the plugin."""


def env_prefix(plugin: str) -> str:
    """`PLUGIN_<NAME>_`: the only variables a plugin may set on a core service (no core setting reads them)."""
    return "PLUGIN_" + plugin.upper().replace("-", "_") + "_"


def owns(plugin: str, name: str) -> bool:
    """Services and volumes of a plugin are named `<plugin>` or `<plugin>-…`."""
    return name == plugin or name.startswith(plugin + "-")


def check_fragment(plugin: str, fragment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The fragment's services normalised (long-form volumes, mapping depends_on), or FragmentRefused."""
    services, volumes, env = fragment["services"], fragment["volumes"], fragment["env"]
    for name, spec in volumes.items():
        _require(plugin, SERVICE_NAME.match(name) is not None and owns(plugin, name),
                 f"volume {name!r} must be named {plugin!r} or start with '{plugin}-'")
        _require(plugin, spec in ({}, None), f"volume {name} may not set a driver or options (render places it)")
    normalised = {}
    for name, spec in services.items():
        _check_name(plugin, name)
        _require(plugin, isinstance(spec, dict), f"service {name} must be a mapping")
        normalised[name] = _check_service(plugin, name, spec, GIVEN_KEYS, set(volumes), set(services), IMAGE.match)
    for service, variables in env.items():
        own = service in services
        _require(plugin, own or service in ENV_TARGETS,
                 f"env may target only {', '.join(ENV_TARGETS)} or the plugin's own services, not {service!r}")
        _require(plugin, isinstance(variables, dict), f"env of {service} must be a mapping")
        for key, value in variables.items():
            _require(plugin, isinstance(key, str) and ENV_NAME.match(key) is not None, f"env {service}.{key} must be UPPER_CASE")
            _require(plugin, own or key.startswith(env_prefix(plugin)),
                     f"env {service}.{key} must start with {env_prefix(plugin)} (core settings are not a plugin's)")
            _require(plugin, isinstance(value, str) and "\n" not in value, f"env {service}.{key} must be a one-line string")
    return normalised


def check_rendered_service(plugin: str, name: str, spec: Any, volumes: set[str], services: set[str],
                           image_ok: Callable[[str], Any], labels: dict[str, str]) -> None:
    """A plugin service as it stands in compose.yaml: the fragment rules plus what render adds."""
    _check_name(plugin, name)
    _require(plugin, isinstance(spec, dict), f"service {name} must be a mapping")
    _check_service(plugin, name, spec, RENDERED_KEYS, volumes, services, image_ok)
    _require(plugin, spec.get("restart") == "unless-stopped", f"service {name} must restart unless-stopped")
    _require(plugin, spec.get("deploy") == {"resources": {"limits": PLUGIN_LIMITS}}, f"service {name} must keep the plugin resource limits")
    _require(plugin, spec.get("labels") == labels, f"service {name} has unexpected labels")


def _check_name(plugin: str, name: Any) -> None:
    _require(plugin, isinstance(name, str) and SERVICE_NAME.match(name) is not None,
             f"service name {name!r} is not lowercase letters, digits and '-'")
    _require(plugin, name not in CORE_SERVICES, f"service {name!r} is a core service and cannot be redefined")
    _require(plugin, owns(plugin, name), f"service {name!r} must be named {plugin!r} or start with '{plugin}-'")


def _check_service(plugin: str, name: str, spec: dict[str, Any], allowed: frozenset[str], volumes: set[str],
                   services: set[str], image_ok: Callable[[str], Any]) -> dict[str, Any]:
    bad = sorted(set(spec) & FORBIDDEN)
    _require(plugin, not bad, f"service {name} may not set {', '.join(bad)}")
    unknown = sorted(set(spec) - allowed)
    _require(plugin, not unknown, f"service {name} may not set {', '.join(unknown)} (allowed: {', '.join(sorted(GIVEN_KEYS))})")
    image = spec.get("image")
    _require(plugin, isinstance(image, str) and bool(image_ok(image)),
             f"service {name}: image {image!r} must be kitctl/NAME[:TAG] (the licence's registry is added by render)")
    out: dict[str, Any] = {"image": image}
    if "command" in spec:
        out["command"] = _command(plugin, name, spec["command"])
    if "environment" in spec:
        out["environment"] = _environment(plugin, name, spec["environment"])
    if "volumes" in spec:
        out["volumes"] = [_mount(plugin, name, m, volumes) for m in _items(plugin, name, "volumes", spec["volumes"])]
    if "ports" in spec:
        out["ports"] = [_port(plugin, name, p) for p in _items(plugin, name, "ports", spec["ports"])]
    if "healthcheck" in spec:
        out["healthcheck"] = _healthcheck(plugin, name, spec["healthcheck"])
    if "depends_on" in spec:
        out["depends_on"] = _depends(plugin, name, spec["depends_on"], services)
    return out


def _items(plugin: str, name: str, key: str, value: Any) -> list[Any]:
    _require(plugin, isinstance(value, list) and len(value) <= MAX_ITEMS, f"service {name}: {key} must be a list")
    return value


def _command(plugin: str, name: str, value: Any) -> list[str]:
    ok = isinstance(value, list) and 0 < len(value) <= MAX_ITEMS and all(isinstance(a, str) for a in value)
    _require(plugin, ok, f"service {name}: command must be a list of strings")
    return value


def _environment(plugin: str, name: str, value: Any) -> dict[str, str]:
    _require(plugin, isinstance(value, dict), f"service {name}: environment must be a mapping")
    for key, item in value.items():
        _require(plugin, ENV_NAME.match(str(key)) is not None and isinstance(item, str) and "\n" not in item,
                 f"service {name}: environment {key} must be UPPER_CASE with a one-line string value")
    return value


def _mount(plugin: str, name: str, raw: Any, volumes: set[str]) -> dict[str, Any]:
    """Only the plugin's own named volumes: no bind mounts, so no host path and no Docker socket."""
    if isinstance(raw, str):
        parts = raw.split(":")
        _require(plugin, len(parts) in (2, 3) and (len(parts) == 2 or parts[2] in ("ro", "rw")),
                 f"service {name}: volume {raw!r} is not VOLUME:/path[:ro]")
        raw = {"type": "volume", "source": parts[0], "target": parts[1], "read_only": len(parts) == 3 and parts[2] == "ro"}
    _require(plugin, isinstance(raw, dict) and raw.get("type", "volume") == "volume"
             and set(raw) <= {"type", "source", "target", "read_only"},
             f"service {name} may mount only its own named volumes (no host paths, no Docker socket)")
    source, target = raw.get("source"), raw.get("target")
    _require(plugin, source in volumes, f"service {name} may mount only volumes its plugin declares, not {source!r}")
    _require(plugin, isinstance(target, str) and target.startswith("/") and ".." not in target.split("/")
             and "\n" not in target, f"service {name}: mount target {target!r} must be an absolute path")
    read_only = raw.get("read_only", False)
    _require(plugin, isinstance(read_only, bool), f"service {name}: read_only must be true or false")
    return {"type": "volume", "source": source, "target": target, "read_only": read_only}


def _port(plugin: str, name: str, raw: Any) -> str:
    match = PORT.match(raw) if isinstance(raw, str) else None
    _require(plugin, match is not None and all(0 < int(match.group(k)) < 65536 for k in (1, 2)),
             f"service {name}: port {raw!r} must be published on 127.0.0.1 only (127.0.0.1:HOST:CONTAINER)")
    return raw


def _healthcheck(plugin: str, name: str, raw: Any) -> dict[str, Any]:
    _require(plugin, isinstance(raw, dict) and set(raw) <= HEALTH_KEYS and "test" in raw,
             f"service {name}: healthcheck may have {', '.join(sorted(HEALTH_KEYS))} and needs test")
    test = raw["test"]
    _require(plugin, isinstance(test, list) and 1 < len(test) <= MAX_ITEMS and test[0] in ("CMD", "CMD-SHELL")
             and all(isinstance(t, str) for t in test), f"service {name}: healthcheck test must be [\"CMD\", …]")
    for key in ("interval", "timeout", "start_period"):
        if key in raw:
            _require(plugin, isinstance(raw[key], str) and DURATION.match(raw[key]) is not None,
                     f"service {name}: healthcheck {key} must be like 10s")
    if "retries" in raw:
        retries = raw["retries"]
        _require(plugin, isinstance(retries, int) and not isinstance(retries, bool) and 0 < retries <= 100,
                 f"service {name}: healthcheck retries must be 1-100")
    return raw


def _depends(plugin: str, name: str, raw: Any, services: set[str]) -> dict[str, dict[str, str]]:
    if isinstance(raw, list) and all(isinstance(d, str) for d in raw):
        raw = {d: {"condition": "service_started"} for d in raw}
    _require(plugin, isinstance(raw, dict), f"service {name}: depends_on must be a list or mapping of services")
    for dep, how in raw.items():
        _require(plugin, dep in services or dep in CORE_SERVICES - {"hq"},
                 f"service {name} depends on unknown service {dep!r}")
        _require(plugin, isinstance(how, dict) and set(how) == {"condition"} and how["condition"] in CONDITIONS,
                 f"service {name}: depends_on {dep} condition must be one of {', '.join(CONDITIONS)}")
    return raw


def _require(plugin: str, ok: bool, message: str) -> None:
    if not ok:
        raise FragmentRefused(f"plugin {plugin}: {message}")

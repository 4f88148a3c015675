"""The shape every rendered compose.yaml must have, checked after rendering.

Values are escaped by construction; this is the second line of defence: if a
value ever changed the structure (a new key, service, volume, `privileged`),
the render fails instead of writing it. Plugin services are checked here by
the same rules the plugin host applies to fragments (plugins.rules).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kitcore.sitedir import SECRETS
from kitctl.render.escape import RenderError
from kitctl.render.monitoring import HARDENING as MONITORING_HARDENING
from kitctl.render.monitoring import SERVICES as MONITORING_SERVICES
from kitctl.render.monitoring import VOLUMES as MONITORING_VOLUMES
from kitctl.render.stack import CORE_SECRETS, HARDENING, SECRET_FILES, SERVICES, VOLUMES
from plugins.rules import PRIVILEGES

if TYPE_CHECKING:
    from kitctl.render.plugin_stack import PluginStack

TOP_KEYS = {"services", "networks", "volumes", "secrets"}
SECRET_NAMES = tuple(sorted(SECRET_FILES))
SERVICE_KEYS: dict[str, set[str]] = {
    "proxy": {"image", "restart", "depends_on", "ports", "volumes", "healthcheck", "deploy", "labels"},
    "storefront": {"image", "restart", "depends_on", "environment", "secrets", "volumes", "healthcheck", "deploy", "labels"},
    "agent": {"image", "restart", "depends_on", "environment", "secrets", "volumes", "ports", "networks", "healthcheck", "deploy", "labels"},
    "db": {"image", "restart", "environment", "secrets", "volumes", "healthcheck", "deploy", "labels"},
}
MONITORING_KEYS: dict[str, set[str]] = {
    "prometheus": {"image", "restart", "depends_on", "ports", "secrets", "volumes", "healthcheck", "deploy", "labels"},
    "alertmanager": {"image", "restart", "ports", "volumes", "healthcheck", "deploy", "labels"},
}
LABEL_KEYS = {"com.kitctl.site", "com.kitctl.service", "com.kitctl.version", "com.kitctl.inputs-hash"}
EXTRA_LABELS = {"proxy": {"com.kitctl.site-name", "com.kitctl.domain"}, "agent": {"com.kitctl.licence-id"}}
HARDENING_KEYS = {"cap_drop", "cap_add", "security_opt", "read_only", "tmpfs"}
FORBIDDEN = PRIVILEGES - HARDENING_KEYS  # core services carry only the hardening below; plugin services none of it
CORE_IMAGE_MARK = "kitctl/storefront:"


def check_structure(doc: Any, plugins: "PluginStack | None" = None, plugin_secrets: tuple[str, ...] = ()) -> None:
    """RenderError unless `doc` has exactly the stack's keys, services, volumes and secrets (plus `plugins`' own,
    and the secrets files of `plugin_secrets`, which only the storefront and the agent receive)."""
    owners = plugins.owners if plugins else {}
    volume_owners = plugins.volumes if plugins else {}
    if not isinstance(doc, dict) or set(doc) != TOP_KEYS:
        raise RenderError(f"compose document has unexpected top-level keys: {sorted(doc) if isinstance(doc, dict) else type(doc).__name__}")
    services = doc["services"]
    watching = _monitoring_services(services)
    if set(services) != set(SERVICES) | set(owners) | set(watching):
        raise RenderError(f"compose document has unexpected services: {sorted(services)}")
    for name, keys in {**SERVICE_KEYS, **{n: MONITORING_KEYS[n] for n in watching}}.items():
        service = services[name]
        hardening = HARDENING[name] if name in HARDENING else MONITORING_HARDENING[name]
        keys = keys | set(hardening)
        if set(service) != keys or FORBIDDEN & set(service):
            raise RenderError(f"service {name} has unexpected keys: {sorted(set(service) ^ keys)}")
        if any(service[key] != value for key, value in hardening.items()):
            raise RenderError(f"service {name} does not carry the stack's capability and filesystem limits")
        labels = service["labels"]
        if set(labels) != LABEL_KEYS | EXTRA_LABELS.get(name, set()):
            raise RenderError(f"service {name} has unexpected labels")
        if not all(isinstance(v, str) for v in labels.values()):
            raise RenderError(f"service {name} has a label that is not a string")
    _check_plugin_env(services, plugins)
    _check_plugin_services(services, owners, volume_owners)
    if set(doc["volumes"]) != set(VOLUMES) | set(volume_owners) | (set(MONITORING_VOLUMES) if watching else set()):
        raise RenderError(f"compose document has unexpected volumes: {sorted(doc['volumes'])}")
    for name in volume_owners:
        if doc["volumes"][name] != _core_volume_like(doc["volumes"]["db-data"], name):
            raise RenderError(f"plugin volume {name} is not placed like the core volumes")
    _check_secrets(doc, plugin_secrets)
    _check_plugin_config(services, plugin_secrets)


def _monitoring_services(services: dict[str, Any]) -> tuple[str, ...]:
    """Prometheus and Alertmanager when monitoring is on (both or neither), each publishing on loopback only,
    Prometheus given no secret but the agent token."""
    present = tuple(name for name in MONITORING_SERVICES if name in services)
    if present and present != MONITORING_SERVICES:
        raise RenderError(f"monitoring needs both {' and '.join(MONITORING_SERVICES)}")
    for name in present:
        for port in services[name].get("ports") or []:
            if not str(port).startswith("127.0.0.1:"):
                raise RenderError(f"service {name} must publish on 127.0.0.1 only")
    if present and (services["prometheus"].get("secrets") or []) not in ([], ["agent_token"]):
        raise RenderError("service prometheus has unexpected secrets")
    return present


def _check_secrets(doc: dict[str, Any], plugin_secrets: tuple[str, ...]) -> None:
    """Top-level secrets are the generated ones and the plugin files, each at its own path under secrets/."""
    from kitctl.render.plugin_config import top_level_secrets

    expected = {name: {"file": f"./{SECRETS}/{name}"} for name in SECRET_NAMES}
    expected.update(top_level_secrets(plugin_secrets))
    if doc["secrets"] != expected:
        raise RenderError("compose document has unexpected secrets")


def _check_plugin_config(services: dict[str, Any], plugin_secrets: tuple[str, ...]) -> None:
    """Each core service gets exactly its secrets; the plugin settings reach the storefront and the agent only,
    at KIT_PLUGIN_CONFIG_DIR: plugins.toml read-only, the plugin secrets files as secrets."""
    from kitctl.render.plugin_config import CONTAINER_DIR, READERS, choice_target, service_secrets

    choice_mount = {"type": "bind", "source": "./plugins.toml", "target": choice_target(), "read_only": True}
    for name, core in CORE_SECRETS.items():
        reader = name in READERS
        if (services[name].get("secrets") or []) != service_secrets(core, plugin_secrets if reader else ()):
            raise RenderError(f"service {name} has unexpected secrets")
        env = services[name].get("environment") or {}
        mounts = services[name].get("volumes") or []
        in_dir = [m for m in mounts if not isinstance(m, dict) or str(m.get("target", "")).startswith(CONTAINER_DIR)]
        if reader and (env.get("KIT_PLUGIN_CONFIG_DIR") != CONTAINER_DIR or in_dir != [choice_mount]):
            raise RenderError(f"service {name} does not get the plugin settings exactly at {CONTAINER_DIR}")
        if not reader and ("KIT_PLUGIN_CONFIG_DIR" in env or in_dir):
            raise RenderError(f"service {name} must not get the plugin settings")


def _check_plugin_env(services: dict[str, Any], plugins: "PluginStack | None") -> None:
    """Core services carry only the PLUGIN_* variables the plugins were allowed to add, nothing else of theirs."""
    from plugins.rules import ENV_TARGETS

    for target in ENV_TARGETS:
        env = services[target].get("environment") or {}
        added = {k for k in env if k.startswith("PLUGIN_")}
        allowed = set(plugins.env.get(target, {})) if plugins else set()
        if added != allowed:
            raise RenderError(f"service {target} has plugin variables no plugin was allowed to add: {sorted(added ^ allowed)}")


def _check_plugin_services(services: dict[str, Any], owners: dict[str, str], volume_owners: dict[str, str]) -> None:
    from plugins.rules import FragmentRefused, IMAGE, check_rendered_service
    from kitctl.render.plugin_stack import plugin_labels

    core_image = services["storefront"]["image"]
    prefix = core_image[: core_image.rindex(CORE_IMAGE_MARK)] if CORE_IMAGE_MARK in core_image else None
    site_labels = services["storefront"]["labels"]

    def image_ok(image: str) -> bool:
        rest = image[len(prefix):] if prefix is not None and image.startswith(prefix) else ""
        return bool(IMAGE.match(rest)) and ":" in rest

    for name, plugin in owners.items():
        labels = plugin_labels(site_labels["com.kitctl.site"], name, site_labels["com.kitctl.version"], plugin)
        try:
            check_rendered_service(plugin, name, services[name], {v for v, p in volume_owners.items() if p == plugin},
                                   {s for s, p in owners.items() if p == plugin}, image_ok, labels)
        except FragmentRefused as exc:
            raise RenderError(str(exc)) from None


def _core_volume_like(core_spec: Any, name: str) -> Any:
    """How a volume called `name` is declared when placed like db-data (a named volume, or bound into the data dir)."""
    if not core_spec:
        return {}
    device = core_spec["driver_opts"]["device"]
    return {**core_spec, "driver_opts": {**core_spec["driver_opts"], "device": device[: -len("db-data")] + name}}

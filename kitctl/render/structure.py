"""The shape every rendered compose.yaml must have, checked after rendering.

Values are escaped by construction; this is the second line of defence: if a
value ever changed the structure (a new key, service, volume, `privileged`),
the render fails instead of writing it.
"""

from __future__ import annotations

from typing import Any

from kitctl.render.escape import RenderError
from kitctl.render.stack import SERVICES, VOLUMES

TOP_KEYS = {"services", "networks", "volumes", "secrets"}
SECRET_NAMES = ("agent_token", "database_url", "db_password", "licence_token", "site_key", "storefront_secret_key")
SERVICE_KEYS: dict[str, set[str]] = {
    "proxy": {"image", "restart", "depends_on", "ports", "volumes", "healthcheck", "deploy", "labels"},
    "storefront": {"image", "restart", "depends_on", "environment", "secrets", "volumes", "healthcheck", "deploy", "labels"},
    "agent": {"image", "restart", "depends_on", "environment", "secrets", "volumes", "ports", "networks", "healthcheck", "deploy", "labels"},
    "db": {"image", "restart", "environment", "secrets", "volumes", "healthcheck", "deploy", "labels"},
}
LABEL_KEYS = {"com.kitctl.site", "com.kitctl.service", "com.kitctl.version", "com.kitctl.inputs-hash"}
EXTRA_LABELS = {"proxy": {"com.kitctl.site-name", "com.kitctl.domain"}, "agent": {"com.kitctl.licence-id"}}
FORBIDDEN = {"privileged", "cap_add", "pid", "network_mode", "devices", "security_opt", "userns_mode", "ipc"}


def check_structure(doc: Any) -> None:
    """RenderError unless `doc` has exactly the stack's keys, services, volumes and secrets."""
    if not isinstance(doc, dict) or set(doc) != TOP_KEYS:
        raise RenderError(f"compose document has unexpected top-level keys: {sorted(doc) if isinstance(doc, dict) else type(doc).__name__}")
    services = doc["services"]
    if set(services) != set(SERVICES):
        raise RenderError(f"compose document has unexpected services: {sorted(services)}")
    for name, keys in SERVICE_KEYS.items():
        service = services[name]
        if set(service) != keys or FORBIDDEN & set(service):
            raise RenderError(f"service {name} has unexpected keys: {sorted(set(service) ^ keys)}")
        labels = service["labels"]
        if set(labels) != LABEL_KEYS | EXTRA_LABELS.get(name, set()):
            raise RenderError(f"service {name} has unexpected labels")
        if not all(isinstance(v, str) for v in labels.values()):
            raise RenderError(f"service {name} has a label that is not a string")
    if set(doc["volumes"]) != set(VOLUMES):
        raise RenderError(f"compose document has unexpected volumes: {sorted(doc['volumes'])}")
    if set(doc["secrets"]) != set(SECRET_NAMES):
        raise RenderError("compose document has unexpected secrets")

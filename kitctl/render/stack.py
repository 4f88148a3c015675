"""The variable parts of the stack (images, ports, probes, limits, networks, volumes).

Kept as plain data so the compose template stays a fixed structure and tests
can read what each service gets.
"""

from __future__ import annotations

import re
from typing import Any

from kitcore.errors import InvalidInput
from kitcore.sitedir import LICENCE_TOKEN
from kitctl.render.plugin_config import CONTAINER_DIR as PLUGIN_CONFIG_DIR

SERVICES = ("proxy", "storefront", "agent", "db")
KIT_PYTHON = "/opt/kit/bin/python"  # the kit's venv inside the storefront/agent images
STOREFRONT_PORT = 8000
AGENT_METRICS_PORT = 9464
PROXY_HEALTH_PORT = 8081
# The proxy image has python3 (the base image) but not the kit: a stdlib-only probe.
PROXY_PROBE = "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=4)"

# The proxy serves the shop's static files itself (kitcore.assets): at 0.50 CPU it was held to 3,452 stylesheets/s
# (bench/static_bench.py), its limit and not the files' cost.
LIMITS: dict[str, dict[str, str]] = {
    "proxy": {"cpus": "1.00", "memory": "256M"},
    "storefront": {"cpus": "1.00", "memory": "512M"},
    "agent": {"cpus": "0.50", "memory": "256M"},
    "db": {"cpus": "1.00", "memory": "1G"},
}

VOLUMES = ("db-data", "proxy-config", "proxy-data")
# Every generated secret, in the order compose.yaml lists them (each is a file in the site's secrets/).
SECRET_FILES = ("db_password", "database_url", "storefront_secret_key", "site_key", "agent_token", LICENCE_TOKEN)
# The generated secrets each service gets at /run/secrets/<name> (plugin secrets follow: kitctl.render.plugin_config).
CORE_SECRETS: dict[str, tuple[str, ...]] = {
    "proxy": (),
    "storefront": ("database_url", "storefront_secret_key", "site_key"),
    "agent": ("database_url", "site_key", LICENCE_TOKEN, "agent_token"),
    "db": ("db_password",),
}


def image_refs(registry: str | None, tag: str, extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Each core service's image (and `extra` kit services', e.g. monitoring), from one registry and tag."""
    prefix = f"{registry}/" if registry else ""
    return {name: f"{prefix}kitctl/{name}:{tag}" for name in (*SERVICES, *extra)}


def image_prefix(registry: str | None, claims: Any) -> str:
    """`registry/` in front of every kit image (the core's and the plugins'), or nothing: --registry, else
    the licence's."""
    chosen = registry or registry_from_licence(claims)
    return f"{chosen}/" if chosen else ""


def registry_from_licence(claims: Any) -> str | None:
    """The registry host[:port][/path] a licence grants, without scheme; None if none."""
    from kitctl.site.inputs import REGISTRY

    grant = claims.registry
    if grant is None:
        return None
    url = re.sub(r"^https?://", "", grant.url).rstrip("/")
    if not REGISTRY.match(url):
        raise InvalidInput(f"licence registry {grant.url!r} is not host[:port][/path]")
    return url


def probes() -> dict[str, list[str]]:
    kit_probe = [KIT_PYTHON, "-m", "kitcore.probe"]
    return {
        "proxy": ["CMD", "python3", "-c", PROXY_PROBE, f"http://127.0.0.1:{PROXY_HEALTH_PORT}/healthz"],
        "storefront": ["CMD", *kit_probe, f"http://127.0.0.1:{STOREFRONT_PORT}/healthz"],
        "agent": ["CMD", *kit_probe, f"http://127.0.0.1:{AGENT_METRICS_PORT}/healthz"],
        "db": ["CMD", "pg_isready", "-q", "-h", "127.0.0.1", "-U", "kit", "-d", "kit"],
    }


def published(bind: str, host_port: int, container_port: int) -> str:
    """A short-syntax port mapping bound to one host address only."""
    host = f"[{bind}]" if ":" in bind else bind
    return f"{host}:{host_port}:{container_port}"


def proxy_ports(inputs: Any) -> list[str]:
    ports = [published(inputs.bind_address, inputs.http_port, 80)]
    if inputs.tls != "off":
        ports.append(published(inputs.bind_address, inputs.https_port, 443))
    return ports


def networks(hq_network: str | None) -> dict[str, Any]:
    nets: dict[str, Any] = {"default": {}}
    if hq_network:
        nets["hq"] = {"external": True, "name": hq_network}
    return nets


def volumes(data_dir: Any, extra: Any = ()) -> dict[str, Any]:
    """Named volumes (the core's, then `extra` ones of plugins); with a data dir, each is bound to
    `<data_dir>/<volume>` (the deploy step creates them)."""
    names = [*VOLUMES, *sorted(extra)]
    if data_dir is None:
        return {name: {} for name in names}
    base = str(data_dir).rstrip("/")
    return {
        name: {"driver": "local", "driver_opts": {"type": "none", "o": "bind", "device": f"{base}/{name}"}}
        for name in names
    }


NO_NEW_PRIVILEGES = ["no-new-privileges:true"]
# What each core container runs with: no capability beyond the ones named (db's entrypoint prepares the
# volume as root, then drops to postgres with setpriv) and no privilege gain. The proxy's root filesystem
# is read-only too; the others read secrets that kitctl copies into /run/secrets as the service's user
# (a bind-mounted 0600 file would be unreadable to it), which needs a writable root filesystem.
HARDENING: dict[str, dict[str, Any]] = {
    "proxy": {"cap_drop": ["ALL"], "security_opt": NO_NEW_PRIVILEGES, "read_only": True, "tmpfs": ["/tmp"]},
    "storefront": {"cap_drop": ["ALL"], "security_opt": NO_NEW_PRIVILEGES},
    "agent": {"cap_drop": ["ALL"], "security_opt": NO_NEW_PRIVILEGES},
    # KILL: tini (root) forwards `docker stop`'s SIGINT to postgres (another uid); without it the signal
    # fails, tini exits and PostgreSQL is killed mid-flight ("not properly shut down" at the next start)
    "db": {"cap_drop": ["ALL"], "cap_add": ["CHOWN", "DAC_OVERRIDE", "FOWNER", "KILL", "SETGID", "SETUID"],
           "security_opt": NO_NEW_PRIVILEGES},
}


def is_loopback(address: str) -> bool:
    import ipaddress

    return ipaddress.ip_address(address.strip("[]")).is_loopback


def agent_environment(hq_url: str | None, plugins: tuple[str, ...], extra: dict[str, str] | None = None,
                      metrics_token: bool = False) -> dict[str, str]:
    """The agent's variables; `metrics_token`: /metrics asks for the agent token (it is published beyond loopback)."""
    env = {
        "KIT_DATABASE_URL_FILE": "/run/secrets/database_url",
        "KIT_SITE_KEY_FILE": "/run/secrets/site_key",
        "KIT_SITE_CONFIG": "/etc/kit/agent.json",
        "KIT_LICENCE_FILE": f"/run/secrets/{LICENCE_TOKEN}",
        "KIT_HQ_KEYS_FILE": "/etc/kit/hq-keys.json",
        "KIT_AGENT_TOKEN_FILE": "/run/secrets/agent_token",
        "KIT_METRICS_PORT": str(AGENT_METRICS_PORT),
        "KIT_PLUGIN_CONFIG_DIR": PLUGIN_CONFIG_DIR,
        "KIT_PLUGINS": ",".join(plugins),
    }
    if hq_url:
        env["KIT_HQ_URL"] = hq_url
    if metrics_token:
        env["KIT_METRICS_AUTH"] = "token"
    env.update(extra or {})  # plugins' PLUGIN_<NAME>_* variables (plugins.rules)
    return env

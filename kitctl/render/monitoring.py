"""Prometheus and Alertmanager beside the site (`kitctl up --with-monitoring`): their files and services.

Kept apart from the core stack so a site without monitoring renders exactly as before. Prometheus
scrapes the agent and the storefront on the stack's network with the kit's shipped rules, and sends
alerts to the Alertmanager next to it; both publish on 127.0.0.1 only, whatever `--bind-address` says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kitcore.sitedir import MONITORING
from kitctl.render import stack

SERVICES = ("prometheus", "alertmanager")
DIR = MONITORING
PROMETHEUS_YML = f"{DIR}/prometheus.yml"
RULES_YML = f"{DIR}/kitctl-rules.yml"
ALERTMANAGER_YML = f"{DIR}/alertmanager.yml"
PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
STOREFRONT_METRICS_PORT = 9465
SCRAPE_INTERVAL = "15s"
VOLUMES = ("prometheus-data",)
LOOPBACK = "127.0.0.1"
LIMITS: dict[str, dict[str, str]] = {
    "prometheus": {"cpus": "0.50", "memory": "512M"},
    "alertmanager": {"cpus": "0.25", "memory": "128M"},
}
# No capability, no privilege gain. Alertmanager's root filesystem is read-only (it writes only its tmpfs);
# Prometheus's is not: kitctl copies the agent token into it as a secret when /metrics asks for one
# (kitctl.deploy.secret_copy), and it writes only its volume.
HARDENING: dict[str, dict[str, Any]] = {
    "prometheus": {"cap_drop": ["ALL"], "security_opt": stack.NO_NEW_PRIVILEGES},
    "alertmanager": {"cap_drop": ["ALL"], "security_opt": stack.NO_NEW_PRIVILEGES, "read_only": True,
                     "tmpfs": ["/tmp"]},
}


def rules_file() -> Path:
    """The shipped rules: `monitoring/` in a checkout, `kitctl/_monitoring/` in a wheel."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "_monitoring", package.parent / "monitoring"):
        rules = candidate / "prometheus" / "kitctl-rules.yml"
        if rules.is_file():
            return rules
    raise FileNotFoundError("kitctl's alert rules are missing from this installation")


def prometheus_config(site_id: str, agent_token: bool) -> dict[str, Any]:
    """prometheus.yml: the site's two targets, the rules, the Alertmanager; `agent_token` when /metrics asks for it."""
    agent: dict[str, Any] = {
        "job_name": "kitagent",
        "static_configs": [{"targets": [f"agent:{stack.AGENT_METRICS_PORT}"], "labels": {"site": site_id}}],
    }
    if agent_token:
        agent["authorization"] = {"credentials_file": "/run/secrets/agent_token"}
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "rule_files": ["/etc/prometheus/kitctl-rules.yml"],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"alertmanager:{ALERTMANAGER_PORT}"]}]}]},
        "scrape_configs": [
            agent,
            {"job_name": "kitshop",
             "static_configs": [{"targets": [f"storefront:{STOREFRONT_METRICS_PORT}"], "labels": {"site": site_id}}]},
        ],
    }


def alertmanager_config() -> dict[str, Any]:
    """alertmanager.yml: alerts grouped per alert and site, kept on Alertmanager's page and API.

    No receiver sends anywhere by default: where a licensee's alerts should go (mail, chat) is theirs
    to add (docs/monitoring.md).
    """
    return {
        "route": {"receiver": "site", "group_by": ["alertname", "site"],
                  "group_wait": "30s", "group_interval": "5m", "repeat_interval": "4h"},
        "receivers": [{"name": "site"}],
    }


def files(site_id: str, agent_token: bool) -> dict[str, bytes]:
    """The monitoring files of the site directory (JSON is YAML: no template can add a key)."""
    import json

    def dump(value: Any) -> bytes:
        return (json.dumps(value, indent=2, sort_keys=True) + "\n").encode("utf-8")

    return {
        PROMETHEUS_YML: dump(prometheus_config(site_id, agent_token)),
        RULES_YML: rules_file().read_bytes(),
        ALERTMANAGER_YML: dump(alertmanager_config()),
    }


def ports(inputs: Any) -> dict[str, list[str]]:
    """Both published on loopback only: Prometheus and Alertmanager have no login."""
    return {
        "prometheus": [stack.published(LOOPBACK, inputs.prometheus_port, PROMETHEUS_PORT)],
        "alertmanager": [stack.published(LOOPBACK, inputs.alertmanager_port, ALERTMANAGER_PORT)],
    }


def probes() -> dict[str, list[str]]:
    """Each image's own readiness endpoint, asked with the base image's python3 (no curl in the images)."""
    return {
        "prometheus": ["CMD", "python3", "-c", stack.PROXY_PROBE, f"http://127.0.0.1:{PROMETHEUS_PORT}/-/ready"],
        "alertmanager": ["CMD", "python3", "-c", stack.PROXY_PROBE, f"http://127.0.0.1:{ALERTMANAGER_PORT}/-/ready"],
    }


def context(inputs: Any, files_: dict[str, bytes], agent_token: bool) -> dict[str, Any]:
    """What compose.yaml.j2 needs for the two services (None: monitoring is off)."""
    from kitctl.render.content_hashes import files_hash

    if not inputs.monitoring:
        return {"monitoring": None}
    return {"monitoring": {
        "ports": ports(inputs),
        "probes": probes(),
        "limits": LIMITS,
        "hardening": HARDENING,
        "prometheus_secrets": ["agent_token"] if agent_token else [],
        "inputs_hashes": {
            "prometheus": files_hash(files_, [PROMETHEUS_YML, RULES_YML]),
            "alertmanager": files_hash(files_, [ALERTMANAGER_YML]),
        },
    }}

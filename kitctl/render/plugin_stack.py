"""Plugins' stack fragments merged into the rendered stack, through render's own checks.

The licensed, enabled plugins' fragments (checked by the host with
`plugins.rules`) become compose services labelled with their
plugin, volumes placed like the core's, and `PLUGIN_<NAME>_…` variables on the
storefront and agent. The core template stays a fixed structure: plugin
services are emitted one escaped value per line after the core services, and
the merged document must parse back to exactly the core document plus these
additions, or the render fails.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from kitcore.errors import InvalidInput
from kitctl.render.escape import RenderError, compose_value, yaml_quote
from plugins.rules import PLUGIN_LABEL, PLUGIN_LIMITS

SERVICE_KEY_ORDER = ("image", "restart", "command", "environment", "volumes", "ports", "healthcheck", "depends_on",
                     "deploy", "labels")
_NETWORKS_LINE = re.compile(r"^networks: ", re.MULTILINE)


@dataclass(frozen=True)
class PluginStack:
    """What the plugins add to one render."""

    services: dict[str, dict[str, Any]] = field(default_factory=dict)  # rendered service specs
    owners: dict[str, str] = field(default_factory=dict)  # service -> plugin
    volumes: dict[str, str] = field(default_factory=dict)  # volume -> plugin
    env: dict[str, dict[str, str]] = field(default_factory=dict)  # storefront/agent -> PLUGIN_* variables

    def record(self) -> dict[str, Any]:
        """What kitctl.lock keeps, so status and up can tell what this render contains."""
        return {"services": dict(sorted(self.owners.items())), "volumes": dict(sorted(self.volumes.items())),
                "env": {target: sorted(variables) for target, variables in sorted(self.env.items())}}


def load_fragments(features: Iterable[str], tier: str | None, enabled: Iterable[str] | None,
                   config_dir: Path | None) -> dict[str, dict[str, Any]]:
    """{plugin: fragment} of the licensed, enabled plugins; InvalidInput naming the plugin if one is refused."""
    from plugins.host import PluginHost

    host = PluginHost.load(list(features), enabled, config_dir, "kitctl", tier=tier)
    fragments, refused = host.plugin_fragments()
    for name, reason in sorted(refused.items()):
        raise InvalidInput(f"{reason} (switch it off with `kitctl plugins disable {name}`)")
    return fragments


def plugin_services(fragments: dict[str, dict[str, Any]]) -> dict[str, str]:
    """service -> plugin, for the fragments given."""
    return {svc: name for name, fragment in fragments.items() for svc in fragment["services"]}


def assemble(fragments: dict[str, dict[str, Any]], image_prefix: str, image_tag: str, site_id: str,
             kit_version: str) -> PluginStack:
    """The rendered form of every fragment: full image references, limits, restart policy, labels."""
    services: dict[str, dict[str, Any]] = {}
    owners: dict[str, str] = {}
    volumes: dict[str, str] = {}
    env: dict[str, dict[str, str]] = {}
    for plugin, fragment in sorted(fragments.items()):
        for name, spec in sorted(fragment["services"].items()):
            own_env = fragment["env"].get(name, {})
            services[name] = _rendered(plugin, name, spec, own_env, image_prefix, image_tag, site_id, kit_version)
            owners[name] = plugin
        volumes.update({v: plugin for v in fragment["volumes"]})
        for target, variables in fragment["env"].items():
            if target not in fragment["services"]:
                env.setdefault(target, {}).update(variables)
    return PluginStack(services, owners, volumes, {t: dict(sorted(v.items())) for t, v in sorted(env.items())})


def _rendered(plugin: str, name: str, spec: dict[str, Any], own_env: dict[str, str], image_prefix: str,
              image_tag: str, site_id: str, kit_version: str) -> dict[str, Any]:
    image = spec["image"] if ":" in spec["image"] else f"{spec['image']}:{image_tag}"
    out: dict[str, Any] = {"image": image_prefix + image, "restart": "unless-stopped"}
    for key in ("command", "environment", "volumes", "ports", "healthcheck", "depends_on"):
        if key in spec:
            out[key] = spec[key]
    if own_env:
        out["environment"] = {**out.get("environment", {}), **own_env}
    out["deploy"] = {"resources": {"limits": dict(PLUGIN_LIMITS)}}
    out["labels"] = plugin_labels(site_id, name, kit_version, plugin)
    return out


def plugin_labels(site_id: str, service: str, kit_version: str, plugin: str) -> dict[str, str]:
    return {"com.kitctl.site": site_id, "com.kitctl.service": service, "com.kitctl.version": kit_version,
            PLUGIN_LABEL: plugin}


def insert(compose_text: str, core: dict[str, Any], added: PluginStack, storefront_marker: str) -> str:
    """The core compose text with the plugin services and storefront variables in place.

    `storefront_marker` is the storefront's last environment line as the
    template rendered it; the plugin variables follow it. The result must parse
    to the core document plus exactly the additions (RenderError otherwise).
    """
    from kitctl.render.yamlload import load_yaml

    text = compose_text
    extra_env = added.env.get("storefront", {})
    if extra_env:
        text = _insert_after(text, storefront_marker, "".join(f"      {k}: {compose_value(v)}\n" for k, v in extra_env.items()))
    if added.services:
        found = list(_NETWORKS_LINE.finditer(text))
        if len(found) != 1:
            raise RenderError("compose template has no single top-level networks line to put plugin services before")
        at = found[0].start()
        text = text[:at] + "".join(_service_text(n, s) for n, s in added.services.items()) + text[at:]
    expected = _expected(core, added)
    if load_yaml(text) != expected:
        raise RenderError("plugin additions did not render to exactly the expected compose document")
    return text


def _expected(core: dict[str, Any], added: PluginStack) -> dict[str, Any]:
    import copy

    from kitctl.render.escape import compose_escape

    doc = copy.deepcopy(core)
    if added.env.get("storefront"):
        doc["services"]["storefront"]["environment"].update(compose_escape(added.env["storefront"]))
    doc["services"].update(compose_escape(added.services))
    return doc


def _insert_after(text: str, line: str, addition: str) -> str:
    if text.count(line) != 1:
        raise RenderError("compose template has no single storefront environment line to add plugin variables after")
    at = text.index(line) + len(line)
    return text[:at] + addition + text[at:]


def _service_text(name: str, spec: dict[str, Any]) -> str:
    lines = [f"  {yaml_quote(name)}:"]
    lines += [f"    {key}: {compose_value(spec[key])}" for key in SERVICE_KEY_ORDER if key in spec]
    return "\n".join(lines) + "\n\n"

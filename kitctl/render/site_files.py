"""Turn a resolved site into the files of its site directory, in memory.

Nothing is written here, so `render` and `plan` share it. Secrets never pass
through: the files only name them (compose `secrets:` with `file:`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kitcore import __version__
from kitcore.sitedir import (
    AGENT_JSON, BRANDING, CADDYFILE, COMPOSE, COMPOSE_ENV, HQ_KEYS, LOCK, SECRETS, SITE_JSON, THEME_CSS, project_name,
)
from kitctl.render import monitoring, plugin_config, plugin_stack, stack
from kitctl.render.compose_templates import render_template
from kitctl.render.content_hashes import canonical_json, compose_hash, files_hash, sha256_hex
from kitctl.render.escape import RenderError, compose_value
from kitctl.render.structure import SECRET_NAMES, check_structure
from kitctl.render.yamlload import load_yaml
from kitctl.site.inputs import DEFAULT_CHECKOUTS_PER_MINUTE as DEFAULT_CHECKOUTS
from kitctl.site.resolve import ResolvedSite

TEXTS = {
    "zh-CN": {"offline": "本站正在维护，请稍后再试。", "contact": "联系方式"},
    "en": {"offline": "This shop is briefly unavailable. Please try again shortly.", "contact": "Contact"},
}


@dataclass(frozen=True)
class RenderedSite:
    files: dict[str, bytes]  # relative path -> content, including kitctl.lock
    compose: dict[str, Any]  # compose.yaml as parsed
    service_hashes: dict[str, str]
    inputs_hash: str
    plugins: plugin_stack.PluginStack = plugin_stack.PluginStack()


def build_site(site: ResolvedSite, fragments: dict[str, dict[str, Any]] | None = None,
               plugin_secrets: tuple[str, ...] = ()) -> RenderedSite:
    """Every rendered file for `site`, with the plugins' `fragments` merged and the `plugin_secrets` files
    (plugin names, see kitctl.render.plugin_config) delivered; RenderError if a structural check fails."""
    files = _config_files(site)
    added = plugin_stack.assemble(fragments or {}, _image_prefix(site), site.image_tag,
                                  site.site_id, __version__)
    plugin_secrets = tuple(sorted(plugin_secrets))
    context = _compose_context(site, files, added, plugin_secrets)
    compose_text = render_template("compose.yaml.j2", **context)
    compose = load_yaml(compose_text)
    if added.services or added.env.get("storefront"):
        marker = f"      KIT_PLUGINS: {compose_value(context['plugins_csv'])}\n"
        compose_text = plugin_stack.insert(compose_text, compose, added, marker)
        compose = load_yaml(compose_text)
    check_structure(compose, added, plugin_secrets)
    files[COMPOSE] = compose_text.encode("utf-8")
    hashes = {name: compose_hash(svc) for name, svc in sorted(compose["services"].items())}
    inputs_hash = _inputs_hash(site)
    files[LOCK] = _lock(site, files, hashes, inputs_hash, added, plugin_secrets)
    return RenderedSite(files=files, compose=compose, service_hashes=hashes, inputs_hash=inputs_hash, plugins=added)


def _image_prefix(site: ResolvedSite) -> str:
    """`registry/` in front of every kit image (the core's and the plugins'), or nothing."""
    return stack.image_prefix(site.inputs.registry, site.licence.claims)


def _config_files(site: ResolvedSite) -> dict[str, bytes]:
    i = site.inputs
    files: dict[str, bytes] = {}
    logo_file = site.logo.filename if site.logo else None
    if site.logo:
        files[f"{BRANDING}/{logo_file}"] = site.logo.data
    # not under branding/ (the proxy's mount): the storefront serves it, replaced start-first on a colour change
    files[THEME_CSS] = render_template(
        "theme.css.j2",
        primary=i.primary_colour,
        accent=i.accent_colour,
        primary_contrast=contrast(i.primary_colour),
        accent_contrast=contrast(i.accent_colour),
        site_name=i.name,
    ).encode("utf-8") + _theme_css(site)
    files.update(_theme_files(site))
    files[f"{BRANDING}/offline.html"] = render_template(
        "offline.html.j2", locale=i.locale, site_name=i.name, contact=i.contact, logo_file=logo_file, text=TEXTS[i.locale]
    ).encode("utf-8")
    files[CADDYFILE] = render_template(
        "Caddyfile.j2", site_id=site.site_id, site_addresses=_site_addresses(site), tls=i.effective_tls,
        default_sni=site.domain.ascii, http_addresses=[f"http://{h}" for h in _site_hosts(site)],
        https_port=i.https_port,
    ).encode("utf-8")
    files[SITE_JSON] = _json_file(checked_site_config(site_config(site, logo_file)))
    files[AGENT_JSON] = _json_file(agent_config(site))
    files[HQ_KEYS] = _json_file(site.jwks)
    # The project is the site id, not the folder's name; kitctl derives it from the services' site label.
    files[COMPOSE_ENV] = f"COMPOSE_PROJECT_NAME={project_name(site.site_id)}\n".encode()
    if i.monitoring:
        files.update(monitoring.files(site.site_id, _metrics_token(site)))
    return files


THEME_DIR = "theme"  # the checked custom theme in the site dir, mounted read-only into the storefront
THEME_TARGET = "/srv/theme"
BRANDING_TARGET = "/srv/branding"  # the storefront's /branding/ directory: theme.css (the proxy serves the rest)


def _theme_css(site: ResolvedSite) -> bytes:
    """The custom theme's CSS after the colours' (it may use and override them); checked in kitcore.theme."""
    if site.theme is None or not site.theme.css:
        return b""
    return ("\n/* the site's custom theme */\n" + site.theme.css).encode("utf-8")


def _theme_files(site: ResolvedSite) -> dict[str, bytes]:
    """The checked theme, as a theme directory again (the next render reads it back from here)."""
    if site.theme is None:
        return {}
    files = {f"{THEME_DIR}/templates/{name}": text.encode("utf-8") for name, text in site.theme.templates.items()}
    if site.theme.css:
        files[f"{THEME_DIR}/theme.css"] = site.theme.css.encode("utf-8")
    return files


def _metrics_token(site: ResolvedSite) -> bool:
    """The agent's /metrics asks for the agent token when it is published beyond loopback."""
    return not stack.is_loopback(site.inputs.metrics_bind_address)


def agent_config(site: ResolvedSite) -> dict[str, Any]:
    """agent.json: only what the agent uses, so a branding change leaves the agent running."""
    return {"site_id": site.site_id, "categories": list(site.categories), "plugins": list(site.plugins),
            "kit_version": __version__}


def site_config(site: ResolvedSite, logo_file: str | None) -> dict[str, Any]:
    """site.json: what the storefront and agent know about the site (KIT_SITE_CONFIG)."""
    i, claims = site.inputs, site.licence.claims
    return {
        "site_id": site.site_id,
        "name": i.name,
        "domain": site.domain.unicode,
        "domain_ascii": site.domain.ascii,
        "locale": i.locale,
        "currency": i.currency,
        "time_zone": i.time_zone,
        "colours": {"primary": i.primary_colour, "accent": i.accent_colour},
        "contact": i.contact,
        "logo": logo_file,  # file name under /branding/ (the storefront builds its URL)
        "logo_url": f"/branding/{logo_file}" if logo_file else None,
        "theme_url": "/branding/theme.css",
        "categories": list(site.categories),
        "plugins": list(site.plugins),
        "licence": {
            "jti": claims.jti,
            "tier": claims.tier,
            "features": list(claims.features),
            "categories": list(claims.categories),
            "regions": list(claims.regions),
            "exp": claims.exp,
        },
        "kit_version": __version__,
    }


def checked_site_config(data: dict[str, Any]) -> dict[str, Any]:
    """`data` unchanged once the storefront's model (kitcore.site) accepts it; RenderError otherwise."""
    from pydantic import ValidationError

    from kitcore.site import parse_site_json

    try:
        parse_site_json(data)
    except ValidationError as exc:
        raise RenderError(f"site.json would not load in the storefront: {exc.errors()[0]['msg']}") from None
    return data


def _site_hosts(site: ResolvedSite) -> list[str]:
    """The site's host names; `localhost` also answers as 127.0.0.1, where a local site is opened."""
    return [site.domain.ascii] + (["127.0.0.1"] if site.domain.ascii == "localhost" else [])


def _site_addresses(site: ResolvedSite) -> list[str]:
    """Caddy site addresses (plain HTTP ones when TLS is off)."""
    return [f"http://{h}" if site.inputs.effective_tls == "off" else h for h in _site_hosts(site)]


def _compose_context(site: ResolvedSite, files: dict[str, bytes], added: plugin_stack.PluginStack,
                     plugin_secrets: tuple[str, ...]) -> dict[str, Any]:
    i = site.inputs
    branding = [n for n in files if n.startswith(f"{BRANDING}/")]
    data_dir = None if i.data_dir is None else Path(i.data_dir).absolute()
    registry = i.registry or stack.registry_from_licence(site.licence.claims)
    return {
        "kit_version": __version__,
        "site_id": site.site_id,
        "site_name": i.name,
        "domain_unicode": site.domain.unicode,
        "licence_jti": site.licence.claims.jti,
        "images": stack.image_refs(registry, site.image_tag, monitoring.SERVICES if i.monitoring else ()),
        "proxy_ports": stack.proxy_ports(i),
        "hardening": stack.HARDENING,
        "agent_ports": [stack.published(i.metrics_bind_address, i.metrics_port, stack.AGENT_METRICS_PORT)],
        "agent_networks": ["default", "hq"] if i.hq_network else ["default"],
        "agent_environment": stack.agent_environment(i.hq_url, site.plugins, added.env.get("agent"),
                                                     metrics_token=_metrics_token(site)),
        "plugins_csv": ",".join(site.plugins),
        "theme_dir": THEME_TARGET if site.theme is not None else None,
        "branding_dir": BRANDING_TARGET,
        "plugin_config_dir": plugin_config.CONTAINER_DIR,
        "plugin_choice_target": plugin_config.choice_target(),
        "storefront_secrets": plugin_config.service_secrets(stack.CORE_SECRETS["storefront"], plugin_secrets),
        "agent_secrets": plugin_config.service_secrets(stack.CORE_SECRETS["agent"], plugin_secrets),
        "plugin_secrets": plugin_config.top_level_secrets(plugin_secrets),
        "core_secret_files": stack.SECRET_FILES,
        "secrets_dir": SECRETS,
        "probes": stack.probes(),
        "limits": stack.LIMITS,
        "replicas": {"storefront": i.replicas, "proxy": i.proxy_replicas},
        # only when not the storefront's own default, so an existing site's storefront hash stays the same
        "checkouts_per_minute": i.checkouts_per_minute if i.checkouts_per_minute != DEFAULT_CHECKOUTS else None,
        "networks": stack.networks(i.hq_network),
        "volumes": stack.volumes(data_dir, [*added.volumes, *(monitoring.VOLUMES if i.monitoring else ())]),
        "inputs_hashes": {
            "proxy": files_hash(files, [CADDYFILE, *branding]),
            "storefront": files_hash(files, [SITE_JSON, THEME_CSS, *(n for n in files if n.startswith(f"{THEME_DIR}/"))]),
            "agent": files_hash(files, [AGENT_JSON, HQ_KEYS]),
            "db": files_hash(files, []),
        },
        **monitoring.context(i, files, _metrics_token(site)),
    }


def contrast(colour: str) -> str:
    """Black or white, whichever reads better on `colour` (WCAG relative luminance)."""
    channels = [int(colour[k : k + 2], 16) / 255 for k in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return "#000000" if luminance > 0.179 else "#FFFFFF"


def _inputs_hash(site: ResolvedSite) -> str:
    """A hash of what the licensee chose (paths replaced by what they point at)."""
    view = site.inputs.model_dump(mode="json", exclude={"licence", "site_dir", "logo", "hq_keys", "theme"})
    view["data_dir"] = None if site.inputs.data_dir is None else str(Path(site.inputs.data_dir).absolute())
    view["licence_jti"] = site.licence.claims.jti
    view["logo_sha256"] = sha256_hex(site.logo.data) if site.logo else None
    view["hq_keys_sha256"] = sha256_hex(canonical_json(site.jwks))
    view["theme_sha256"] = sha256_hex(canonical_json({k: v.decode("utf-8") for k, v in _theme_files(site).items()})) if site.theme else None
    view["categories"] = list(site.categories)
    return sha256_hex(canonical_json(view))


def recorded_inputs(site: ResolvedSite) -> dict[str, Any]:
    """The licensee's choices as kitctl.lock keeps them, so `up` can render again after a licence change.

    No licence (it is in secrets/), and no paths into the site dir: the logo and
    the pinned keys are re-read from branding/ and hq-keys.json.
    """
    view = site.inputs.model_dump(mode="json", exclude={"licence", "site_dir", "logo", "hq_keys", "theme"})
    view["data_dir"] = None if site.inputs.data_dir is None else str(Path(site.inputs.data_dir).absolute())
    return view


def _lock(site: ResolvedSite, files: dict[str, bytes], hashes: dict[str, str], inputs_hash: str,
          added: plugin_stack.PluginStack, plugin_secrets: tuple[str, ...]) -> bytes:
    claims = site.licence.claims
    return _json_file(
        {
            "inputs": recorded_inputs(site),
            "plugins": added.record(),
            **_carried_record(site),
            "kit_version": __version__,
            "site_id": site.site_id,
            "licence": {"jti": claims.jti, "tier": claims.tier, "exp": claims.exp},
            "inputs_sha256": inputs_hash,
            "files": {name: sha256_hex(data) for name, data in sorted(files.items())},
            "secrets": {name: "present" for name in (*SECRET_NAMES, *map(plugin_config.secret_key, plugin_secrets))},
            "services": hashes,
        }
    )


def _carried_record(site: ResolvedSite) -> dict[str, Any]:
    """kitctl.lock's record of the third-party plugin wheels in the site's images, each with whether this
    render enables it (the licence grants its feature, the site has not switched it off); none when render
    was not asked to look (build_site called on its own)."""
    from kitctl.render.image_plugins import LOCK_KEY, refusals
    from plugins.site_config import read_choice

    if site.carried is None:
        return {}
    disabled = read_choice(Path(site.inputs.site_dir)).disabled
    return {LOCK_KEY: site.carried.record(refusals(site.carried, site.licence.claims, disabled, site.plugins))}


def _json_file(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")

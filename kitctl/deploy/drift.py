"""Do the running plugin services match what the newest licence and the site's choice call for?

HQ upgrades or downgrades a licence by heartbeat; the agent stores the new
token in the site database (`site_state.licence_token`). Code-only plugins
follow at once (storefront and agent rebuild their host), but a plugin that
adds a service needs a redeploy: `kitctl status` says so, and `kitctl up`
renders again with the newest licence before it deploys (the plugin's
container starts; after a downgrade it is removed, its volumes kept).
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kitcore.errors import KitError
from kitcore.sitedir import SiteDir

if TYPE_CHECKING:
    import docker

    from kitctl.deploy.compose import Project

PLUGIN_LABEL = "com.kitctl.plugin"
TOKEN_QUERY = "SELECT coalesce(licence_token, '') FROM site_state WHERE id = 1"


@dataclass(frozen=True)
class PluginDrift:
    """Plugin services (service -> plugin) wanted, rendered and deployed, and which licence decided."""

    wanted: dict[str, str]
    rendered: dict[str, str]
    deployed: dict[str, str]
    tier: str | None = None
    licence_from: str = "site"  # "site": the token render wrote; "agent": a newer one HQ sent by heartbeat
    error: str | None = None

    @property
    def redeploy_needed(self) -> bool:
        return self.error is None and set(self.wanted) != set(self.deployed)

    @property
    def rerender_needed(self) -> bool:
        return self.error is None and set(self.wanted) != set(self.rendered)

    def reason(self) -> str | None:
        """One line for people: what changes and what to run; None when nothing does."""
        if self.error is not None:
            return f"cannot tell whether plugin services changed: {self.error}"
        if not self.redeploy_needed:
            return None
        parts = []
        added = sorted(set(self.wanted) - set(self.deployed))
        removed = sorted(set(self.deployed) - set(self.wanted))
        if added:
            parts.append("adds " + ", ".join(f"{s} ({self.wanted[s]})" for s in added))
        if removed:
            parts.append("removes " + ", ".join(f"{s} ({self.deployed[s]})" for s in removed))
        source = "the licence HQ sent" if self.licence_from == "agent" else "the site's licence and plugin choice"
        tier = f" (tier {self.tier})" if self.tier else ""
        return f"{source}{tier} {' and '.join(parts)}: run `kitctl up`"

    def as_dict(self) -> dict[str, Any]:
        return {"redeploy_needed": self.redeploy_needed, "reason": self.reason(),
                "plugin_services": {"wanted": self.wanted, "rendered": self.rendered, "deployed": self.deployed},
                "licence_from": self.licence_from}


def plugin_drift(client: "docker.DockerClient", project: "Project", site_dir: Path,
                 hq_keys: Path | None = None) -> PluginDrift:
    """Compare what the newest licence would render with what compose.yaml holds and what runs."""
    rendered = rendered_services(site_dir)
    deployed = deployed_services(client, project)
    if not rendered_by_kitctl(site_dir):
        return PluginDrift({}, rendered, deployed)  # plugin services are a render's: a hand-written stack has none
    try:
        wanted, tier, source = decide(site_dir, stored_licence_token(client, project), hq_keys)
    except KitError as exc:
        return PluginDrift(rendered, rendered, deployed, error=str(exc))
    return PluginDrift(wanted, rendered, deployed, tier, source)


def decide(site_dir: Path, stored: str | None, hq_keys: Path | None) -> tuple[dict[str, str], str | None, str]:
    """(wanted plugin services, tier, licence source); from the last check when none of its inputs changed."""
    cached = last_check(site_dir, stored)
    if cached is not None:
        return rendered_services(site_dir), cached.get("tier"), cached.get("licence_from", "site")
    claims, source = effective_licence(site_dir, stored, hq_keys)
    return wanted_services(site_dir, claims), claims.tier, source


def rendered_by_kitctl(site_dir: Path) -> bool:
    """Plugin services come from a render (kitctl.lock records its inputs); a hand-written compose.yaml has none."""
    return isinstance(_lock(site_dir).get("inputs"), dict)


def last_check(site_dir: Path, stored: str | None) -> dict[str, Any] | None:
    """What `up` recorded when it last found the plugin services right, if none of its inputs changed since."""
    cached = _checked(site_dir)
    return cached if cached.get("fingerprint") == _fingerprint(site_dir, stored) else None


def stored_licence_token(client: "docker.DockerClient", project: "Project", db_service: str = "db") -> str | None:
    """The licence token the agent last stored in the site database, read inside the db container (psql over
    its local socket, no password leaves it); None when there is no db container or no row yet."""
    from kitctl.deploy.operate import _container, _exec

    command = token_query(project, db_service)
    container = _container(client, project, db_service, required=False) if command else None
    if container is None:
        return None
    try:
        return token_from_output(*_exec(client, container, command))
    except Exception:  # noqa: BLE001 - a stopped or starting db: the site dir's licence decides
        return None


def token_query(project: "Project", db_service: str = "db") -> list[str] | None:
    """The psql command that prints the stored token, run inside the db container; None without a db service,
    or without an agent (the only writer of that token)."""
    if db_service not in project.services or "agent" not in project.services:
        return None
    env = dict(project.services[db_service].environment)
    return ["psql", "-X", "-qtA", "-U", "postgres", "-d", env.get("POSTGRES_DB", "kit"), "-c", TOKEN_QUERY]


def token_from_output(code: int, output: str) -> str | None:
    lines = output.strip().splitlines()
    token = lines[-1].strip() if code == 0 and lines else ""
    return token if token.count(".") == 2 else None


def site_token(site_dir: Path) -> str:

    try:
        return SiteDir(site_dir).licence_token.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise KitError(f"cannot read the site's licence ({SiteDir(Path()).licence_token}): {type(exc).__name__}") from None


def effective_licence(site_dir: Path, stored: str | None, hq_keys: Path | None) -> tuple[Any, str]:
    """(claims, "site"|"agent"): the newest verified licence for this site, as the agent chooses it."""
    from kitcore.errors import LicenceError
    from kitcore.licence.keys import load_jwks
    from kitcore.licence.token import verify_licence

    keys = load_jwks(hq_keys or SiteDir(site_dir).hq_keys)
    own = verify_licence(site_token(site_dir), keys).claims
    if not stored or stored == site_token(site_dir):
        return own, "site"
    try:
        theirs = verify_licence(stored, keys).claims
    except LicenceError:
        return own, "site"  # the agent keeps only verified tokens; a bad one here changes nothing
    if theirs.sub == own.sub and theirs.iat > own.iat:
        return theirs, "agent"
    return own, "site"


def wanted_services(site_dir: Path, claims: Any) -> dict[str, str]:
    """service -> plugin for the plugins this licence grants and the site enabled."""
    from kitctl.render.plugin_stack import load_fragments, plugin_services

    named = _lock(site_dir).get("inputs", {}).get("plugins") or []
    enabled = [p for p in named if p in claims.features] or None
    return plugin_services(load_fragments(claims.features, claims.tier, enabled, site_dir))


def rendered_services(site_dir: Path) -> dict[str, str]:
    return dict(_lock(site_dir).get("plugins", {}).get("services") or {})


def deployed_services(client: "docker.DockerClient", project: "Project") -> dict[str, str]:
    from kitctl.deploy import labels as L
    from kitctl.deploy.state import OLD_SUFFIX

    found = {}
    flt = L.project_filter(project.name)
    flt["label"].append(PLUGIN_LABEL)
    for c in client.api.containers(all=True, filters=flt):
        labels = c.get("Labels") or {}
        if not c["Names"][0].endswith(OLD_SUFFIX):
            found[labels.get(L.SERVICE, "?")] = labels.get(PLUGIN_LABEL, "?")
    return found


def remove_retired_plugin_services(client: "docker.DockerClient", project: "Project") -> list[str]:
    """Stop and remove containers of plugin services compose.yaml no longer has (a downgrade); volumes stay."""
    from kitctl.deploy import labels as L

    removed = []
    flt = L.project_filter(project.name)
    flt["label"].append(PLUGIN_LABEL)
    for c in client.api.containers(all=True, filters=flt):
        service = (c.get("Labels") or {}).get(L.SERVICE, "?")
        if service in project.services:
            continue
        client.api.stop(c["Id"], timeout=10)
        client.api.remove_container(c["Id"], force=True)
        removed.append(service)
    return sorted(set(removed))


def refresh_before_up(site_dir: Path, host: str | None, hq_keys: Path | None, dry_run: bool = False) -> str | None:
    """Render again when the newest licence or the site's plugin choice changes the plugin services.

    Returns a line to print when it rendered (with `dry_run`: when it would).
    Cheap when nothing changed: one query in the db container and a fingerprint
    of the plugin inputs, compared with the last check that found nothing to do
    (.kitctl/plugins-checked.json).
    """
    from kitctl.deploy.compose import load_project
    from kitctl.engine import connect

    site_dir = Path(site_dir)
    if not rendered_by_kitctl(site_dir):
        return None
    project = load_project(site_dir)
    stored = stored_licence_token(connect(host), project) if token_query(project) else None
    wanted, tier, source = decide(site_dir, stored, hq_keys)
    change = ", ".join(sorted(set(wanted) ^ set(rendered_services(site_dir))))
    if change and dry_run:
        return f"the {tier} licence changes plugin services {change}: `kitctl up` renders again first (not in a dry run)"
    note = None
    if change:
        from kitctl.render.api import rerender_site

        rerender_site(site_dir, stored if source == "agent" else None)
        if set(rendered_services(site_dir)) != set(wanted):
            raise KitError("the plugin services rendered differ from those the licence calls for; run `kitctl plan` to see why")
        note = f"rendered again for the {tier} licence: plugin services {change} change"
        source = "site"  # the site dir now holds the newest licence
    _remember(site_dir, {"fingerprint": _fingerprint(site_dir, stored), "tier": tier, "licence_from": source})
    return note


def _fingerprint(site_dir: Path, stored: str | None) -> str:
    """What decides the plugin services: licences, plugins.toml, plugin secrets, installed packages, kitctl."""
    from kitcore import __version__

    digest = hashlib.sha256(__version__.encode())
    site = SiteDir(site_dir)
    for token in (stored or "", _quiet_read(site.licence_token), _quiet_read(site.lock_file)):
        digest.update(b"\0" + (token.encode() if isinstance(token, str) else token))
    digest.update(_quiet_read(site.plugins_toml))
    secrets = site.plugin_secrets
    for path in sorted(secrets.glob("*.json")) if secrets.is_dir() else []:
        digest.update(path.name.encode() + b"\0" + _quiet_read(path))
    # a package installed or removed changes its directory; the same places however Python was started
    for entry in sorted({str(Path(e or ".").resolve()) for e in sys.path}):
        try:
            digest.update(f"{entry}:{Path(entry).stat().st_mtime_ns}".encode())
        except OSError:
            continue
    return digest.hexdigest()


def _quiet_read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _checked(site_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads(SiteDir(site_dir).plugins_checked.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _remember(site_dir: Path, record: dict[str, Any]) -> None:
    """Note that the plugin services `up` deploys are the ones these inputs call for (written by `up` only;
    without it the next `up` checks in full)."""
    from kitctl.deploy.rendered_site import write_cache

    write_cache(SiteDir(site_dir).plugins_checked, record)


def _lock(site_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads(SiteDir(site_dir).lock_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}

"""Third-party plugins the site's images carry, as render sees them: read, gated by the licence, recorded.

`kitctl images build --plugin-wheel` installs a wheel into the storefront and agent images and records it
in their `com.kitctl.plugins` label (kitctl.images.plugin_wheels). Such a plugin may exist only there, not
in the host's kitctl, so render reads that label from the local engine (the standard library's HTTP over
the unix socket: no docker-py import for a render) for the images the site will run. When the engine or
the image is not at hand (a registry-only image, a remote engine) the record the last render kept in
kitctl.lock for the same tag stands in. Render then selects such a plugin by name, refuses it naming the
feature the licence lacks, and records every carried wheel (name, version, sha256) in kitctl.lock with
whether it is enabled.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import quote

from kitcore.images import IMAGE_TAG
from kitctl.images.plugin_wheels import PLUGINS_LABEL

CARRIERS = ("storefront", "agent")  # the images whose plugin hosts load the wheels
LOCK_KEY = "images"  # kitctl.lock: {"tag", "plugins": [record, ...]}


@dataclass(frozen=True)
class CarriedPlugin:
    """One plugin registered by a wheel built into the site's images."""

    name: str
    version: str
    feature: str
    api_version: int
    wheel: str  # the wheel's file name
    distribution: str
    wheel_version: str
    sha256: str  # of the wheel file

    def record(self, refused: str | None) -> dict[str, Any]:
        """What kitctl.lock keeps of it: the wheel's identity and whether this render enables it."""
        return {**asdict(self), "enabled": refused is None, "refused": refused}


@dataclass(frozen=True)
class Carried:
    """The plugins the site's images of `tag` carry (from their label, or the lock of the same tag)."""

    tag: str
    plugins: tuple[CarriedPlugin, ...] = ()

    def record(self, refusals: dict[str, str | None]) -> dict[str, Any]:
        """kitctl.lock's entry (not where it was read: the same images give the same lock either way)."""
        return {"tag": self.tag, "plugins": [p.record(refusals.get(p.name)) for p in self.plugins]}


def from_label(value: str | None) -> tuple[CarriedPlugin, ...] | None:
    """The plugins a `com.kitctl.plugins` label lists; None when it is not one (absent or malformed)."""
    try:
        wheels = json.loads(value) if value else None
        if not isinstance(wheels, list):
            return None
        return tuple(sorted((CarriedPlugin(str(p["name"]), str(p["version"]), str(p["feature"]), int(p["api_version"]),
                                           str(w["file"]), str(w["distribution"]), str(w["version"]), str(w["sha256"]))
                             for w in wheels for p in w["plugins"]), key=lambda p: p.name))
    except (ValueError, KeyError, TypeError):
        return None


def from_lock(site_dir: Path, tag: str) -> tuple[CarriedPlugin, ...] | None:
    """What the last render recorded for images of `tag`; None when it recorded nothing for that tag."""
    from kitcore.sitedir import SiteDir

    try:
        recorded = json.loads(SiteDir(site_dir).lock_file.read_text(encoding="utf-8")).get(LOCK_KEY)
        if not isinstance(recorded, dict) or recorded.get("tag") != tag:
            return None
        fields = CarriedPlugin.__dataclass_fields__
        return tuple(CarriedPlugin(**{k: int(p[k]) if k == "api_version" else str(p[k]) for k in fields})
                     for p in recorded["plugins"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def image_labels(docker_host: str, refs: Iterable[str]) -> dict[str, str] | None:
    """{ref: its plugins label ("[]" when it records none)} of the refs the local engine holds; None when the
    engine is not a reachable unix socket (render then uses the lock)."""
    found = inspected(docker_host, refs)
    if found is None:
        return None
    return {ref: ((answer.get("Config") or {}).get("Labels") or {}).get(PLUGINS_LABEL, "[]")
            for ref, answer in found.items()}


def inspected(docker_host: str, refs: Iterable[str]) -> dict[str, dict[str, Any]] | None:
    """{ref: the engine's description of the image} of the refs the local engine holds; None when the
    engine is not a unix socket that answers."""
    import http.client

    from kitcore.unixhttp import UnixHTTPClient
    from kitctl.engine import API_VERSION

    if not docker_host.startswith("unix://"):
        return None
    found: dict[str, dict[str, Any]] = {}
    try:
        with UnixHTTPClient(docker_host[len("unix://"):], 5.0) as engine:
            for ref in refs:
                status, body = engine.request("GET", f"/v{API_VERSION}/images/{quote(ref, safe='/:@')}/json")
                if status == 200:
                    answer = json.loads(body)
                    found[ref] = answer if isinstance(answer, dict) else {}
                elif status != 404:
                    return None
    except (OSError, http.client.HTTPException, ValueError):
        return None
    return found


def read_refs(site_dir: Path) -> tuple[str, list[str]] | None:
    """(docker host, the storefront and agent image refs) the site's last render read labels from; None when
    it recorded none. For `kitctl render`'s no-op check: a rebuild under the same tag must render again."""
    import re

    from kitcore.sitedir import SiteDir

    site = SiteDir(site_dir)
    try:
        lock = json.loads(site.lock_file.read_text(encoding="utf-8"))
        tag, host = lock[LOCK_KEY]["tag"], lock["inputs"]["docker_host"]
        compose = site.compose.read_text(encoding="utf-8")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(tag, str) or not isinstance(host, str):
        return None
    used = re.findall(r"^\s*image:\s*[\"']?([^\"'\s]+)", compose, re.MULTILINE)
    refs = {f"kitctl/{svc}:{tag}" for svc in CARRIERS} | {r for r in used for svc in CARRIERS if f"kitctl/{svc}:" in r}
    return host, sorted(refs)


def carried_by_images(site_dir: Path | None, docker_host: str, prefix: str, tag: str) -> Carried:
    """The plugins of the site's storefront and agent images under `tag` (`prefix` = `registry/` or "").

    The registry's reference is read first, then the same image as `kitctl images build` tagged it locally;
    both images must carry a plugin for it to count (a page slot runs in one, its events in the other)."""
    if not IMAGE_TAG.match(tag):
        return Carried(tag)
    refs = {svc: [f"{prefix}kitctl/{svc}:{tag}", f"kitctl/{svc}:{tag}"] for svc in CARRIERS}
    labels = image_labels(docker_host, [r for rs in refs.values() for r in rs])
    if labels is not None:
        per_image = [next((from_label(labels[r]) for r in refs[svc] if r in labels), None) for svc in CARRIERS]
        if all(p is not None for p in per_image):
            names = set.intersection(*({p.name for p in plugins or ()} for plugins in per_image))
            return Carried(tag, tuple(p for p in per_image[0] or () if p.name in names))
    recorded = from_lock(site_dir, tag) if site_dir is not None else None
    return Carried(tag, recorded or ())


def refusals(carried: Carried, claims: Any, disabled: Iterable[str], selected: Iterable[str]) -> dict[str, str | None]:
    """Why render does not enable each carried plugin (None: enabled): the licence first, then the site's
    choice (plugins.toml's disabled list; a --plugin selection that leaves it out)."""
    from plugins.contract import Manifest
    from plugins.host import licence_refusal

    off, chosen = set(disabled), set(selected)
    out: dict[str, str | None] = {}
    for plugin in carried.plugins:
        manifest = Manifest(name=plugin.name, version=plugin.version, feature=plugin.feature)
        why = licence_refusal(manifest, set(claims.features), claims.tier)
        if why is None and plugin.name in off:
            why = f"{plugin.name} is disabled in plugins.toml"
        if why is None and chosen and plugin.name not in chosen:
            why = f"{plugin.name} is not among the plugins this render selects"
        out[plugin.name] = why
    return out

"""Tie validated inputs to a verified licence: the last checks before rendering.

The licence is read (TOKEN or @FILE) and verified offline against the pinned
HQ keys; the plugins and categories asked for must be ones the licence grants,
and a refusal names the tier that would grant them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from kitcore import __version__
from kitcore.errors import InvalidInput
from kitcore.theme import FEATURE as THEME_FEATURE
from kitcore.theme import Theme, load_theme
from kitctl.site.domain import Domain
from kitctl.site.inputs import SiteInputs
from kitctl.site.logo import Logo, load_logo

HQ_KEYS_ENV_HINT = "pass --hq-keys FILE or set KITCTL_HQ_KEYS"
# (inputs, verified claims, image tag) -> what the site's images carry (kitctl.render.image_plugins.Carried)
CarriedReader = Callable[[SiteInputs, Any, str], Any]


@dataclass(frozen=True)
class ResolvedSite:
    """Inputs plus what they point at (verified licence, logo bytes, pinned keys)."""

    inputs: SiteInputs
    licence: Any  # kitcore.licence.token.VerifiedLicence
    jwks: dict[str, Any]
    logo: Logo | None
    domain: Domain
    categories: tuple[str, ...]
    plugins: tuple[str, ...]
    image_tag: str = ""  # the kit images' tag: --image-tag, else the one the site runs, else the kit version
    theme: Theme | None = None  # the custom theme, checked (only on a licence granting custom-theme)
    carried: Any = None  # kitctl.render.image_plugins.Carried: third-party plugins built into the images

    @property
    def site_id(self) -> str:
        return self.licence.claims.sub


def resolve_site(inputs: SiteInputs, now: float | None = None, carried: CarriedReader | None = None,
                 drop_unlicensed: bool = False) -> ResolvedSite:
    """Verify the licence and everything that depends on it; InvalidInput otherwise.

    `carried` reads the plugins the site's images carry (render passes it): --plugin may name those too.
    `drop_unlicensed`: plugins asked for that the licence does not allow are left out, not refused (a
    render again after HQ took a feature away)."""
    _require(inputs)
    jwks = _read_jwks(inputs.hq_keys)
    licence = _verify(inputs.licence or "", jwks, now)
    image_tag = inputs.image_tag or running_image_tag(inputs.site_dir) or __version__
    images = carried(inputs, licence.claims, image_tag) if carried is not None else None
    return ResolvedSite(
        inputs=inputs,
        licence=licence,
        jwks=jwks,
        logo=load_logo(inputs.logo) if inputs.logo is not None else None,
        domain=inputs.parsed_domain,
        categories=check_categories(inputs.categories, licence.claims),
        plugins=check_plugins(inputs.plugins, licence.claims, carried=images.plugins if images else (),
                              drop_unlicensed=drop_unlicensed),
        image_tag=image_tag,
        theme=check_theme(inputs.theme, licence.claims),
        carried=images,
    )


def check_theme(directory: Path | None, claims: Any) -> Theme | None:
    """The custom theme, checked; refused in one line when the licence does not grant custom-theme."""
    if directory is None:
        return None
    if THEME_FEATURE not in claims.features:
        raise InvalidInput(f"--theme: the licence (tier {claims.tier}) does not grant {THEME_FEATURE}; "
                           "this tier keeps colours and logo (--primary-color, --accent-color, --logo)")
    return load_theme(directory)


def running_image_tag(site_dir: Path | None) -> str | None:
    """The tag of the kit's images in the site's current compose.yaml (as a render or `kitctl upgrade` left it).

    A render keeps the version the site runs: moving to another version is
    `kitctl upgrade --to VERSION` (health-gated, rolled back on failure), or an
    explicit --image-tag, never a side effect of changing a colour.
    """
    from kitcore.images import KIT_IMAGE
    from kitcore.sitedir import SiteDir

    try:
        text = SiteDir(Path(site_dir)).compose.read_text(encoding="utf-8") if site_dir else ""
    except (OSError, UnicodeDecodeError):
        return None
    tags = {m["tag"] for line in re.findall(r"^\s*image:\s*[\"']?([^\"'\s]+)", text, re.MULTILINE)
            if (m := KIT_IMAGE.match(line))}
    return tags.pop() if len(tags) == 1 else None


def _require(inputs: SiteInputs) -> None:
    if not inputs.licence:
        raise InvalidInput("missing --licence TOKEN|@FILE (or KITCTL_LICENCE, or licence in site.toml)")
    if not inputs.name:
        raise InvalidInput("missing --name (the site name buyers see)")
    if not inputs.domain:
        raise InvalidInput("missing --domain (e.g. shop.example.cn, or localhost for a local site)")
    if inputs.hq_keys is None:
        raise InvalidInput(f"no pinned HQ keys: {HQ_KEYS_ENV_HINT}")


def _read_jwks(path: Path | None) -> dict[str, Any]:
    from kitcore.licence.keys import load_jwks

    assert path is not None
    try:
        load_jwks(path)  # validates and gives the one-line errors
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput(f"cannot read HQ keys file {path}: {exc.strerror or exc}") from None


def _verify(arg: str, jwks: dict[str, Any], now: float | None):
    from kitcore.licence.keys import load_jwks
    from kitctl.licence.given import read_token_arg
    from kitcore.licence.token import verify_licence

    return verify_licence(read_token_arg(arg), load_jwks(jwks), now=now)


def check_plugins(wanted: list[str], claims: Any, sources: list[Any] | None = None,
                  carried: Sequence[Any] = (), drop_unlicensed: bool = False) -> tuple[str, ...]:
    """Plugins to enable, by plugin name (third-party ones included); each needs the licence feature its
    manifest names. `carried`: plugins built into the site's images (name, version, feature), which the
    host's kitctl need not have installed; their record wins over an installed plugin of the same name.
    A name neither carries is refused: the storefront would take it as the whole enabled set and switch
    every real plugin off."""
    if not wanted:
        return ()
    from plugins.contract import Manifest
    from plugins.host import PluginHost, licence_refusal

    # enabled=() keeps every plugin from starting: only the manifests are read
    host = PluginHost.load(claims.features, (), None, "kitctl", tier=claims.tier, sources=sources)
    in_images = {p.name: p for p in carried}
    allowed = []
    for name in wanted:
        info = in_images.get(name) or host.installed.get(name)
        if info is None:
            why = host.refused.get(name)
            raise InvalidInput(why or f"unknown plugin {name!r}: no installed plugin has that name "
                               f"(installed: {', '.join(sorted(host.installed)) or 'none'}; "
                               f"in the site's images: {', '.join(sorted(in_images)) or 'none'})")
        refusal = licence_refusal(Manifest(name=name, version=info.version, feature=info.feature), set(claims.features), claims.tier)
        if refusal and not drop_unlicensed:
            raise InvalidInput(f"plugin {name!r} is not allowed: {refusal}")
        if not refusal:
            allowed.append(name)
    return tuple(sorted(set(allowed)))


def check_categories(wanted: list[str] | None, claims: Any) -> tuple[str, ...]:
    """Categories to sell (default: all the licence allows); never more than it allows."""
    from kitcore.licence.tiers import CATEGORIES, TIERS

    if wanted is None:
        return tuple(sorted(claims.categories))
    for category in wanted:
        if category not in CATEGORIES:
            raise InvalidInput(f"unknown category {category!r} (known: {', '.join(CATEGORIES)})")
        if category not in claims.categories:
            needed = len(set(claims.categories) | set(wanted))
            tier = next((t.name for t in TIERS.values() if t.max_categories >= needed), "flagship")
            raise InvalidInput(
                f"category {category!r} is not in this {claims.tier} licence "
                f"(licensed: {', '.join(claims.categories)}); {needed} categories need the {tier} tier — ask HQ"
            )
    return tuple(sorted(wanted))

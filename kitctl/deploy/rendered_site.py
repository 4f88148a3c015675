"""The rendered site directory as deploy sees it: compose file, licence, pinned keys."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kitcore.errors import InvalidInput
from kitcore.sitedir import SiteDir

if TYPE_CHECKING:
    from kitctl.deploy.compose import Project
    from kitcore.licence.token import VerifiedLicence



def require_site_dir(site_dir: Path) -> Path:
    if not SiteDir(site_dir).is_rendered:
        raise InvalidInput(f"{site_dir} has no compose.yaml: run `kitctl render` first or pass --site-dir")
    return site_dir.resolve()


def verified_licence(site_dir: Path, licence: str | None, hq_keys: Path | None) -> "VerifiedLicence":
    """The licence given (TOKEN, @FILE, -) or the site's own, verified against the pinned keys."""
    from kitcore.licence.keys import load_jwks
    from kitctl.licence.given import read_token_arg
    from kitcore.licence.token import verify_licence

    token_arg, keys_path = _licence_sources(site_dir, licence, hq_keys)
    verified = verify_licence(read_token_arg(token_arg), load_jwks(keys_path))
    _remember(site_dir, token_arg, keys_path, verified)
    return verified


def _licence_sources(site_dir: Path, licence: str | None, hq_keys: Path | None) -> tuple[str, Path]:
    site, relative = SiteDir(site_dir), SiteDir(Path())
    if licence is None:
        stored = site.licence_token
        if not stored.is_file():
            raise InvalidInput(f"no licence: pass --licence TOKEN|@FILE (the site has no {relative.licence_token})")
        licence = f"@{stored}"
    keys_path = hq_keys or (Path(os.environ["KITCTL_HQ_KEYS"]) if os.environ.get("KITCTL_HQ_KEYS") else None)
    keys_path = keys_path or site.hq_keys
    if not keys_path.is_file():
        raise InvalidInput(f"no pinned HQ keys: pass --hq-keys FILE (the site has no {relative.hq_keys})")
    return licence, keys_path


@dataclass(frozen=True)
class CachedClaims:
    sub: str
    tier: str
    exp: int
    registry: None = None  # never cached: a pull verifies the token in full to get the grant


@dataclass(frozen=True)
class CachedLicence:
    """A licence this site verified before, unchanged since (same token, same pinned keys), not yet expired.

    Lets a no-op `up` skip loading the crypto and validation stack; anything
    that needs more than the summary (a registry grant) verifies in full.
    """

    claims: CachedClaims
    status: str = "valid"

    @property
    def days_left(self) -> int:
        return int(self.claims.exp - time.time()) // 86400


def licence_summary(site_dir: Path, licence: str | None, hq_keys: Path | None) -> VerifiedLicence | CachedLicence:
    """The cached verification when it still holds, else a full verification."""
    return cached_licence(site_dir, licence, hq_keys) or verified_licence(site_dir, licence, hq_keys)


def cached_licence(site_dir: Path, licence: str | None, hq_keys: Path | None) -> CachedLicence | None:
    """An earlier full verification of this very token against these very keys, not yet expired."""
    if licence is not None and not licence.startswith("@"):
        return None
    try:
        token_arg, keys_path = _licence_sources(site_dir, licence, hq_keys)
        cached = json.loads(SiteDir(site_dir).licence_verified.read_text(encoding="utf-8"))
        if cached["fingerprint"] == _fingerprint(token_arg, keys_path) and time.time() < cached["exp"]:
            return CachedLicence(CachedClaims(cached["sub"], cached["tier"], cached["exp"]))
    except (OSError, ValueError, KeyError, TypeError, InvalidInput):
        pass
    return None


def _fingerprint(token_arg: str, keys_path: Path) -> str:
    token = Path(token_arg[1:]).read_bytes() if token_arg.startswith("@") else token_arg.encode()
    return hashlib.sha256(token.strip() + b"\0" + keys_path.read_bytes()).hexdigest()


def _remember(site_dir: Path, token_arg: str, keys_path: Path, verified: "VerifiedLicence") -> None:
    if verified.status != "valid" or not (token_arg.startswith("@")) or not SiteDir(site_dir).is_rendered:
        return
    try:
        record = {"fingerprint": _fingerprint(token_arg, keys_path), "sub": verified.claims.sub,
                  "tier": verified.claims.tier, "exp": verified.claims.exp}
    except OSError:
        return
    write_cache(SiteDir(site_dir).licence_verified, record)


def write_cache(path: Path, record: dict) -> None:
    """Replace a JSON cache file under the site's .kitctl/ atomically; a cache that cannot be written costs only speed."""
    try:
        path.parent.mkdir(mode=0o700, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record), encoding="utf-8")
        tmp.replace(path)
    except OSError:
        pass


def site_domain(site_dir: Path) -> str | None:
    """The domain from site.json, when the site has one (for the resolution warning and the URL)."""
    import json

    try:
        data = json.loads(SiteDir(site_dir).site_json.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    domain = data.get("domain") if isinstance(data, dict) else None
    return domain if isinstance(domain, str) and domain else None


def site_url(project: "Project", site_dir: Path) -> str | None:
    """Where a buyer opens the site: HTTPS when published, by the site's name (the proxy routes on it)."""
    published = {p.container_port: p for svc in project.services.values() for p in svc.ports if p.host_port}
    for container_port, scheme in ((443, "https"), (80, "http")):
        port = published.get(container_port)
        if port is None:
            continue
        host = site_domain(site_dir) or (port.host_ip if port.host_ip not in ("", "0.0.0.0", "::") else "localhost")
        default = port.host_port == container_port
        return f"{scheme}://{host}" + ("" if default else f":{port.host_port}") + "/"
    return None

"""The rendered site directory as deploy sees it: compose file, licence, pinned keys."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from kitctl.errors import InvalidInput

if TYPE_CHECKING:
    from kitctl.licence.token import VerifiedLicence

LICENCE_FILE = Path("secrets") / "licence_token"
HQ_KEYS_FILE = Path("hq-keys.json")
SITE_JSON = Path("site.json")


def require_site_dir(site_dir: Path) -> Path:
    if not (site_dir / "compose.yaml").is_file():
        raise InvalidInput(f"{site_dir} has no compose.yaml: run `kitctl render` first or pass --site-dir")
    return site_dir.resolve()


def verified_licence(site_dir: Path, licence: str | None, hq_keys: Path | None) -> "VerifiedLicence":
    """The licence given (TOKEN, @FILE, -) or the site's own, verified against the pinned keys."""
    from kitctl.licence.keys import load_jwks
    from kitctl.licence.source import read_token_arg
    from kitctl.licence.token import verify_licence

    if licence is None:
        stored = site_dir / LICENCE_FILE
        if not stored.is_file():
            raise InvalidInput(f"no licence: pass --licence TOKEN|@FILE (the site has no {LICENCE_FILE})")
        licence = f"@{stored}"
    keys_path = hq_keys or (Path(os.environ["KITCTL_HQ_KEYS"]) if os.environ.get("KITCTL_HQ_KEYS") else None)
    keys_path = keys_path or site_dir / HQ_KEYS_FILE
    if not keys_path.is_file():
        raise InvalidInput(f"no pinned HQ keys: pass --hq-keys FILE (the site has no {HQ_KEYS_FILE})")
    return verify_licence(read_token_arg(licence), load_jwks(keys_path))


def site_domain(site_dir: Path) -> str | None:
    """The domain from site.json, when the site has one (for the resolution warning and the URL)."""
    import json

    try:
        data = json.loads((site_dir / SITE_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    domain = data.get("domain") if isinstance(data, dict) else None
    return domain if isinstance(domain, str) and domain else None

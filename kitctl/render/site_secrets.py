"""The site's generated secrets: created once, mode 0600, kept across renders, never shown.

Each secret is one file in `<site>/secrets/`, mounted read-only into the
containers that need it at `/run/secrets/<name>`. Only the licence token is
replaced on render (it is an input: an upgraded licence must reach the agent).
"""

from __future__ import annotations

import base64
import os
import secrets as random
import shutil
from pathlib import Path
from urllib.parse import quote

from kitcore.licence.keys import write_private
from kitcore.sitedir import LICENCE_TOKEN, PLUGIN_SECRETS, licence_token_in
from kitctl.render.structure import SECRET_NAMES


def _generators() -> dict[str, object]:
    return {
        "db_password": lambda: random.token_urlsafe(32),
        "storefront_secret_key": lambda: random.token_urlsafe(48),
        "site_key": lambda: base64.b64encode(os.urandom(32)).decode("ascii"),
        "agent_token": lambda: random.token_urlsafe(32),
    }


def missing_secrets(secrets_dir: Path) -> list[str]:
    """Names of the secrets a render would have to create."""
    return [name for name in SECRET_NAMES if not (secrets_dir / name).is_file()]


def carry_over(old_dir: Path, new_dir: Path) -> None:
    """Copy existing secrets into a new site dir being prepared, keeping mode 0600.

    Plugin secrets (`plugins/NAME.json`, written by `kitctl plugins config`)
    come along too: a render must never lose a licensee's settings.
    """
    new_dir.mkdir(mode=0o700, exist_ok=True)
    if not old_dir.is_dir():
        return
    for name in SECRET_NAMES:
        source = old_dir / name
        if source.is_file():
            write_private(new_dir / name, source.read_bytes())
    plugin_dir = old_dir / PLUGIN_SECRETS
    if plugin_dir.is_dir():
        (new_dir / PLUGIN_SECRETS).mkdir(mode=0o700, exist_ok=True)
        os.chmod(new_dir / PLUGIN_SECRETS, 0o700)
        for source in sorted(plugin_dir.iterdir()):
            if source.is_file() and not source.is_symlink():
                write_private(new_dir / PLUGIN_SECRETS / source.name, source.read_bytes())


def ensure_secrets(secrets_dir: Path, licence_token: str) -> list[str]:
    """Create whatever secret is missing; write the licence token if it changed. Returns created names."""
    secrets_dir.mkdir(mode=0o700, exist_ok=True)
    os.chmod(secrets_dir, 0o700)
    created = []
    for name, make in _generators().items():
        if not (secrets_dir / name).is_file():
            write_private(secrets_dir / name, make().encode("ascii"))  # type: ignore[operator]
            created.append(name)
    url_path = secrets_dir / "database_url"
    if "db_password" in created or not url_path.is_file():
        password = (secrets_dir / "db_password").read_text(encoding="ascii")
        write_private(url_path, f"postgresql+psycopg://kit:{quote(password, safe='')}@db:5432/kit".encode("ascii"))
        created.append("database_url")
    token_path = licence_token_in(secrets_dir)
    if not token_path.is_file() or token_path.read_bytes() != licence_token.encode("ascii"):
        if not token_path.is_file():
            created.append(LICENCE_TOKEN)
        write_private(token_path, licence_token.encode("ascii"))
    return sorted(created)


def secrets_current(secrets_dir: Path, licence_token: str) -> bool:
    """True when every secret exists with mode 0600 and the licence token is the given one."""
    if missing_secrets(secrets_dir):
        return False
    if any((secrets_dir / n).stat().st_mode & 0o077 for n in SECRET_NAMES):
        return False
    return licence_token_in(secrets_dir).read_bytes() == licence_token.encode("ascii")


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)

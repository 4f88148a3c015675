"""Write a rendered site directory atomically, keeping secrets and the licensee's files.

The new directory is built beside the old one (`.<name>.new-*`), then swapped
in with two renames; the old one is kept as `.<name>.old-*` until the
licensee's own files (site.toml, data …) are moved across. If kitctl dies
between the renames, the next run puts the old directory back first.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from kitcore.sitedir import OWNED, SECRETS, SiteDir
from kitctl.render.plugin_config import ensure_choice_file
from kitctl.render.site_secrets import carry_over, ensure_secrets, remove_tree, secrets_current

STALE_STAGING_SECONDS = 600


@dataclass(frozen=True)
class WriteResult:
    changed: bool
    secrets_created: list[str] = field(default_factory=list)


def write_site(site_dir: Path, files: dict[str, bytes], licence_token: str) -> WriteResult:
    """Make `site_dir` hold exactly `files` plus secrets and a plugins.toml; touch nothing if it already does."""
    site_dir = site_dir.absolute()
    site_dir.parent.mkdir(parents=True, exist_ok=True)
    with SiteDir(site_dir).locked():
        result = _write_locked(site_dir, files, licence_token)
        if ensure_choice_file(site_dir):  # the services bind it; the licensee's own is never replaced
            result = WriteResult(changed=True, secrets_created=result.secrets_created)
        return result


def _write_locked(site_dir: Path, files: dict[str, bytes], licence_token: str) -> WriteResult:
    recover_interrupted(site_dir)
    if site_dir.is_dir() and _matches(site_dir, files) and secrets_current(SiteDir(site_dir).secrets, licence_token):
        return WriteResult(changed=False)
    staging = Path(tempfile.mkdtemp(prefix=f".{site_dir.name}.new-", dir=site_dir.parent))
    try:
        _write_files(staging, files)
        carry_over(SiteDir(site_dir).secrets, SiteDir(staging).secrets)
        created = ensure_secrets(SiteDir(staging).secrets, licence_token)
        os.chmod(staging, 0o750)
        _swap(site_dir, staging)
    except BaseException:
        remove_tree(staging)
        raise
    return WriteResult(changed=True, secrets_created=created)


def read_site_files(site_dir: Path) -> dict[str, bytes]:
    """The renderer-owned files currently in `site_dir` (secrets excluded)."""
    found: dict[str, bytes] = {}
    if not site_dir.is_dir():
        return found
    for name in sorted(OWNED - {SECRETS}):
        path = site_dir / name
        if path.is_file():
            found[name] = path.read_bytes()
        elif path.is_dir():
            for sub in sorted(path.rglob("*")):
                if sub.is_file():
                    found[sub.relative_to(site_dir).as_posix()] = sub.read_bytes()
    return found


def recover_interrupted(site_dir: Path) -> None:
    """Undo a swap cut short: restore `.<name>.old-*` if the dir is missing; drop stale staging dirs."""
    parent = site_dir.parent
    olds = sorted(parent.glob(f".{site_dir.name}.old-*"))
    if olds and not site_dir.exists():
        os.rename(olds[-1], site_dir)
        olds = olds[:-1]
    for old in olds:
        if site_dir.exists():
            _move_user_entries(old, site_dir)
            remove_tree(old)
    for staging in parent.glob(f".{site_dir.name}.new-*"):
        if time.time() - staging.stat().st_mtime > STALE_STAGING_SECONDS:  # not another render in flight
            remove_tree(staging)


def _matches(site_dir: Path, files: dict[str, bytes]) -> bool:
    return read_site_files(site_dir) == files


def _write_files(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        with open(path, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(path, 0o644)


def _swap(site_dir: Path, staging: Path) -> None:
    if not site_dir.exists():
        os.rename(staging, site_dir)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{site_dir.name}.old-", dir=site_dir.parent))
    os.rmdir(old)
    os.rename(site_dir, old)
    os.rename(staging, site_dir)
    _move_user_entries(old, site_dir)
    remove_tree(old)


def _move_user_entries(old: Path, site_dir: Path) -> None:
    """Carry everything the renderer does not own (site.toml, data, notes) into the new dir."""
    for entry in old.iterdir():
        if entry.name not in OWNED and not (site_dir / entry.name).exists():
            os.rename(entry, site_dir / entry.name)

"""The two fingerprints stored on each container; a container is recreated when either changes.

- config hash (`com.docker.compose.config-hash`): `kitctl.render.compose_hash`
  of the service exactly as it stands in compose.yaml, so `kitctl plan` and
  `kitctl up` agree on what changed.
- mounts hash (`io.kitctl.mounts-hash`): the *contents* of the files the service
  bind-mounts. Docker binds a file by inode, so a re-rendered file (written by
  rename) is invisible to a running container until it is recreated; covering
  contents here means a colour change recreates only the services that mount
  the changed files, even for a hand-written compose file.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from kitctl.deploy.compose import Project

MAX_HASHED_FILES = 2000


def config_hash(project: Project, service: str) -> str:
    return _compose_hash(project.raw_services[service] or {})


def _compose_hash(raw: dict[str, Any]) -> str:
    try:
        from kitctl.render.content_hashes import compose_hash
    except ImportError:  # render not merged yet: the same definition (sha256 of canonical JSON)
        return hashlib.sha256(json.dumps(raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
                              .encode("utf-8")).hexdigest()
    return compose_hash(raw)


def mounts_hash(project: Project, service: str) -> str:
    """sha256 over the contents of every bind-mounted file or directory (bounded)."""
    digest = hashlib.sha256()
    for mount in project.services[service].mounts:
        if mount.kind in ("bind", "secret"):
            digest.update(mount.target.encode() + b"\0" + _path_digest(Path(mount.source)).encode() + b"\n")
    return digest.hexdigest()


def _path_digest(path: Path) -> str:
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(_walk(path))
    for file in files:
        digest.update(str(file.relative_to(path) if file != path else file.name).encode() + b"\0")
        try:
            with file.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 16), b""):
                    digest.update(chunk)
        except OSError:
            digest.update(b"<unreadable>")
    return digest.hexdigest()


def _walk(root: Path) -> list[Path]:
    found: list[Path] = []
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            found.append(Path(dirpath) / name)
            if len(found) >= MAX_HASHED_FILES:
                return found
    return found

"""`python -m hq.swarm_task migrate|serve`: one task of HQ running as a Swarm service (`kitctl hq deploy`).

Instances share nothing but the database. What every instance must hold alike (the licence-signing keys,
the vault key, the risk rules, the metrics token) and the database URL come in one Swarm secret, a JSON
bundle `{"database_url": …, "files": {relative path: base64}}`. `serve` writes the files into a directory of
its own task (a tmpfs) and serves without migrating; `migrate` brings the database to the newest schema,
once, as the one-shot job `kitctl hq deploy` runs before it starts or updates the instances.
"""

from __future__ import annotations

import base64
import json
import os
import sys
from pathlib import Path, PurePosixPath
from typing import Any

BUNDLE_ENV = "KIT_HQ_STATE_FILE"
DEFAULT_BUNDLE = "/run/secrets/hq-state"


def read_bundle(path: Path) -> dict[str, Any]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or not isinstance(doc.get("database_url"), str) or not isinstance(doc.get("files"), dict):
        raise SystemExit(f"{path}: not an HQ state bundle")
    return doc


def unpack(bundle: dict[str, Any], directory: Path) -> None:
    """Write the bundle's files under `directory` (0700 directories, 0600 files); no path leaves it."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    for name, data in sorted(bundle["files"].items()):
        rel = PurePosixPath(name)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise SystemExit(f"HQ state bundle: refused path {name!r}")
        path = directory.joinpath(*rel.parts)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(base64.b64decode(data))


def main(argv: list[str]) -> int:
    from hq.settings import HQSettings

    if argv not in (["migrate"], ["serve"]):
        print("usage: python -m hq.swarm_task migrate|serve", file=sys.stderr)
        return 2
    bundle = read_bundle(Path(os.environ.get(BUNDLE_ENV, DEFAULT_BUNDLE)))
    if argv == ["migrate"]:
        from hq import db

        db.upgrade(bundle["database_url"])
        print("hq: database migrated", flush=True)
        return 0
    from hq.__main__ import serve

    settings = HQSettings(database_url=bundle["database_url"], migrate=False)
    unpack(bundle, settings.dir)
    return serve(settings)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

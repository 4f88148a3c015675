"""Shared by the backup tests: a site directory with a site key, a db dump holding a sealed card key,
and a stand-in for the Docker Engine API that answers `pg_dump` with that dump."""

from __future__ import annotations

import base64
import gzip
import io
import os
import tarfile
from pathlib import Path
from typing import Any, Iterator

from sitedb.sealing import open_sealed, seal
from tests.deploy.stack import SiteSpec, write_site
from tests.support.exec_fake import STDOUT, FakeExecAPI

CARD_KEY = "CARD-7Q2X-91KD-ZZ0P"
CONTACT = "buyer-secret@example.cn"


def make_site(root: Path) -> tuple[Path, bytes]:
    """A site directory (as `kitctl up` leaves it) with secrets/site_key; returns (dir, site key)."""
    site = write_site(root / "shop", SiteSpec("shop", "星辰游戏", 18080, "kitctl/web:0"), "lic.en.ce", {"keys": []})
    key = os.urandom(32)
    path = site / "secrets" / "site_key"
    path.write_text(base64.b64encode(key).decode("ascii"))
    path.chmod(0o600)
    return site, key


def dump_with_sealed_card_key(key: bytes) -> bytes:
    """What the database dump holds: card keys sealed with the site key, as the agent stores them."""
    sealed = seal(key, {"card_keys": [{"code": CARD_KEY}]})
    return b"PGDMP\x01\x0e\x00 orders delivery_sealed " + sealed.encode("ascii") + b"\n"


class FakeEngineAPI(FakeExecAPI):
    """The few Engine API calls `kitctl backup` makes: find the db container, exec pg_dump in it."""

    def __init__(self, dump: bytes) -> None:
        super().__init__()
        self.dump = dump

    def containers(self, all: bool = False, filters: Any = None) -> list[dict[str, Any]]:
        return [{"Id": "db-container", "Names": ["/shop_db_1"]}]

    def info(self) -> dict[str, Any]:  # one engine, no Swarm: the backup of containers
        return {"Swarm": {"LocalNodeState": "inactive"}}

    def answer(self, command: list[str]) -> list[tuple[int, bytes]]:
        return [(STDOUT, self.dump[:10]), (STDOUT, self.dump[10:])]

    def get_archive(self, container: str, path: str) -> tuple[Iterator[bytes], dict[str, Any]]:
        """A volume as the engine streams it: a tar rooted at the mount's last name."""
        self.commands.append(["get_archive", path])
        return iter([volume_tar(path)]), {}


def volume_tar(path: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = b"-----BEGIN PRIVATE KEY----- local CA"
        info = tarfile.TarInfo(f"{path.strip('/').rsplit('/', 1)[-1]}/caddy/pki/authorities/local/root.key")
        info.size, info.mode, info.uid, info.gid = len(data), 0o600, 999, 999
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class FakeClient:
    def __init__(self, dump: bytes) -> None:
        self.api = FakeEngineAPI(dump)


def what_a_thief_reads(archive: bytes) -> bytes:
    """Everything readable from the archive file alone: its bytes, unzipped, and every tar member."""
    seen = [archive]
    try:
        seen.append(gzip.decompress(archive))
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            for member in tar.getmembers():
                if member.isfile():
                    seen.append(tar.extractfile(member).read())  # type: ignore[union-attr]
    except (OSError, EOFError, tarfile.TarError):
        pass
    return b"\n".join(seen)


def unseal_with_found_key(readable: bytes, sealed_dump: bytes) -> list[Any]:
    """What a thief unseals: every site key found in the readable text tried on the dump's sealed value."""
    import re

    sealed = sealed_dump.rsplit(b" ", 1)[-1].strip().decode("ascii")
    opened = []
    for candidate in re.findall(rb"[A-Za-z0-9+/]{43}=", readable):
        try:
            opened.append(open_sealed(base64.b64decode(candidate), sealed))
        except Exception:
            continue
    return opened

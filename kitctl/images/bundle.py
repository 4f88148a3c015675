"""Offline bundles: every image of a kit version in one archive, with checksums.

Layout (an uncompressed tar):
    images/<service>.tar   `docker save` of kitctl/<service>:<version>
    manifest.json          format, version, and per image: service, tag, file,
                           size, sha256, plugins (the third-party plugin wheels
                           the image carries: its `com.kitctl.plugins` label)
`load_bundle` checks the member list, sizes and SHA-256 of every image before
loading any, so a corrupt or tampered archive changes nothing on the engine.
The checksums catch damage, not a forger who rewrites the manifest too; the
archive should come from a trusted channel (HQ).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from kitctl.images import SERVICES, image_tag

if TYPE_CHECKING:
    import docker

FORMAT = "kitctl-bundle/1"
MANIFEST = "manifest.json"
_CHUNK = 1 << 20
_MEMBER = re.compile(r"^images/([a-z0-9-]+)\.tar\Z")

OnLine = Callable[[str, str], None]


@dataclass(frozen=True)
class BundleEntry:
    service: str
    tag: str
    file: str
    size: int
    sha256: str
    plugins: list = field(default_factory=list)  # kitctl.images.plugin_wheels records; absent in older bundles


def save_bundle(
    client: "docker.DockerClient", out: Path, version: str, services: list[str], on_line: OnLine | None = None
) -> list[BundleEntry]:
    """Write `docker save` of each `kitctl/<service>:<version>` plus a manifest to `out`.

    Written to a temporary file beside `out` and renamed at the end, so a
    failed save never leaves a half bundle under the final name.
    """
    from kitcore.errors import InvalidInput

    out = Path(out)
    if not out.parent.is_dir():
        raise InvalidInput(f"directory {out.parent} does not exist")
    entries: list[BundleEntry] = []
    fd, partial = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent)
    os.close(fd)
    try:
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as archive:
            for service in services:
                tag = image_tag(service, version)
                if on_line:
                    on_line(service, f"docker save {tag}")
                entries.append(_add_saved_image(client, archive, service, tag, out.parent))
            manifest = {
                "format": FORMAT,
                "version": version,
                "images": [e.__dict__ for e in entries],
            }
            _add_bytes(archive, MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode())
        os.replace(partial, out)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    return entries


def _add_saved_image(client: "docker.DockerClient", archive: tarfile.TarFile, service: str, tag: str, tmp_dir: Path) -> BundleEntry:
    from docker.errors import ImageNotFound

    from kitcore.errors import KitError

    digest = hashlib.sha256()
    size = 0
    with tempfile.TemporaryFile(dir=tmp_dir) as spool:
        try:
            for chunk in client.api.get_image(tag, chunk_size=_CHUNK):
                spool.write(chunk)
                digest.update(chunk)
                size += len(chunk)
        except ImageNotFound:
            raise KitError(f"image {tag} not found; run `kitctl images build` first") from None
        spool.seek(0)
        name = f"images/{service}.tar"
        info = tarfile.TarInfo(name)
        info.size = size
        info.mode = 0o644
        archive.addfile(info, spool)
    return BundleEntry(service, tag, name, size, digest.hexdigest(), _plugins_of(client, tag))


def _plugins_of(client: "docker.DockerClient", tag: str) -> list:
    """The plugin wheels an image records in its `com.kitctl.plugins` label (none for images without it)."""
    from kitctl.images.plugin_wheels import PLUGINS_LABEL

    labels = (client.api.inspect_image(tag).get("Config") or {}).get("Labels") or {}
    try:
        records = json.loads(labels.get(PLUGINS_LABEL) or "[]")
    except ValueError:
        return []
    return records if isinstance(records, list) else []


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    import io

    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    archive.addfile(info, io.BytesIO(data))


def verify_bundle(path: Path) -> list[BundleEntry]:
    """The bundle's entries, after checking its members against the manifest.

    Raises InvalidInput (one line) when the archive is unreadable, has missing
    or extra members, or any image's size or SHA-256 differs.
    """
    from kitcore.errors import InvalidInput

    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"bundle {path} does not exist")
    refuse = f"bundle {path.name} refused"
    try:
        with tarfile.open(path, "r:") as archive:
            members = {m.name: m for m in archive.getmembers()}
            entries = _read_manifest(archive, members, refuse)
            expected = {e.file for e in entries} | {MANIFEST}
            extra = sorted(set(members) - expected)
            if extra:
                raise InvalidInput(f"{refuse}: unexpected member {extra[0]!r}")
            for entry in entries:
                member = members.get(entry.file)
                if member is None or not member.isfile():
                    raise InvalidInput(f"{refuse}: {entry.file} is missing")
                if member.size != entry.size:
                    raise InvalidInput(f"{refuse}: {entry.file} has {member.size} bytes, manifest says {entry.size}")
                actual = _sha256(archive.extractfile(member))
                if actual != entry.sha256:
                    raise InvalidInput(f"{refuse}: checksum mismatch for {entry.file} (corrupt or tampered)")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InvalidInput(f"{refuse}: not a readable bundle archive ({exc})") from None
    return entries


def _read_manifest(archive: tarfile.TarFile, members: dict[str, tarfile.TarInfo], refuse: str) -> list[BundleEntry]:
    from kitcore.errors import InvalidInput

    member = members.get(MANIFEST)
    if member is None or not member.isfile():
        raise InvalidInput(f"{refuse}: no {MANIFEST}")
    try:
        manifest = json.loads(archive.extractfile(member).read())
        if manifest.get("format") != FORMAT:
            raise InvalidInput(f"{refuse}: unknown format {manifest.get('format')!r}")
        entries = [BundleEntry(**item) for item in manifest["images"]]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InvalidInput(f"{refuse}: malformed {MANIFEST} ({type(exc).__name__})") from None
    for entry in entries:
        match = _MEMBER.match(entry.file)
        if not match or match.group(1) != entry.service or entry.service not in SERVICES:
            raise InvalidInput(f"{refuse}: bad image entry {entry.file!r}")
        if entry.tag != image_tag(entry.service, manifest.get("version", "")):
            raise InvalidInput(f"{refuse}: tag {entry.tag!r} does not match version {manifest.get('version')!r}")
        if not re.fullmatch(r"[0-9a-f]{64}", str(entry.sha256)):
            raise InvalidInput(f"{refuse}: bad checksum for {entry.file}")
    if not entries:
        raise InvalidInput(f"{refuse}: no images in {MANIFEST}")
    return entries


def _sha256(stream: BinaryIO | None) -> str:
    digest = hashlib.sha256()
    if stream is not None:
        for chunk in iter(lambda: stream.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_bundle(path: Path, client: "docker.DockerClient | None" = None, on_line: OnLine | None = None) -> list[str]:
    """Verify a bundle, then load its images into the engine; return the tags loaded.

    `kitctl up --bundle FILE` calls this before starting anything. Nothing is
    loaded unless every image checks out.
    """
    from kitcore.errors import KitError
    from kitctl.engine import connect, first_line

    entries = verify_bundle(path)
    client = client or connect(timeout=300)
    with tarfile.open(path, "r:") as archive:
        for entry in entries:
            if on_line:
                on_line(entry.service, f"docker load {entry.tag}")
            stream = archive.extractfile(archive.getmember(entry.file))
            try:
                for event in client.api.load_image(stream):
                    if "error" in event or "errorDetail" in event:
                        message = event.get("errorDetail", {}).get("message") or event.get("error")
                        raise KitError(f"loading {entry.tag} failed: {message}")
            except Exception as exc:
                if isinstance(exc, KitError):
                    raise
                raise KitError(f"loading {entry.tag} failed: {first_line(exc)}") from None
            client.api.inspect_image(entry.tag)  # the tag must now exist
    return [e.tag for e in entries]

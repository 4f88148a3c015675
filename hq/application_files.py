"""Applicants' uploaded materials: checked by their content, stored where nothing serves or runs them.

A file is taken only if its first bytes are those of a PDF, PNG or JPEG (the name's extension
must agree) and it is at most MAX_FILE_BYTES. It is written under HQ's directory
(`application-materials/`, mode 0700) by a random name, mode 0600, never with the name or an
extension the applicant chose: no web server maps that directory, and HQ hands a file back only
to operators, as an attachment with `nosniff` (hq.api_applications, hq.fleet_applications).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from hq.errors import ApiError

if TYPE_CHECKING:
    from hq.service import HQ

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_FILES = 12
MAX_NAME = 120
# content type: (the magic its first bytes start with, the extensions its name may have)
TYPES: dict[str, tuple[bytes, tuple[str, ...]]] = {
    "application/pdf": (b"%PDF-", (".pdf",)),
    "image/png": (b"\x89PNG\r\n\x1a\n", (".png",)),
    "image/jpeg": (b"\xff\xd8\xff", (".jpg", ".jpeg")),
}
DIRECTORY = "application-materials"


@dataclass(frozen=True)
class Upload:
    """One file as received: which requirement it meets (`identity` or a category), its name and bytes."""

    kind: str
    filename: str
    data: bytes
    expires_on: date | None = None


@dataclass(frozen=True)
class Checked:
    upload: Upload
    name: str
    content_type: str
    sha256: str


def sniff(data: bytes) -> str | None:
    """The content type the bytes are, by their magic; None for anything else."""
    for content_type, (magic, _) in TYPES.items():
        if data.startswith(magic):
            return content_type
    return None


def check(upload: Upload) -> Checked:
    """Size and type by content (and a name that agrees), or a one-line refusal naming the material."""
    name = _clean_name(upload.filename)
    if len(upload.data) > MAX_FILE_BYTES:
        raise ApiError(413, "material_too_large", f"material {upload.kind}: {name} is {len(upload.data):,} bytes; "
                       f"at most {MAX_FILE_BYTES:,} (5 MiB)")
    content_type = sniff(upload.data)
    if content_type is None:
        raise ApiError(422, "material_type", f"material {upload.kind}: {name} is not a PDF, PNG or JPEG file "
                       "(checked by its content)")
    if not name.lower().endswith(TYPES[content_type][1]):
        raise ApiError(422, "material_type", f"material {upload.kind}: {name} is a {content_type.split('/')[1].upper()} "
                       f"file; its name must end in {' or '.join(TYPES[content_type][1])}")
    return Checked(upload, name, content_type, hashlib.sha256(upload.data).hexdigest())


def _clean_name(filename: str) -> str:
    """The last path part, printable, at most MAX_NAME characters (kept for operators; never used as a path)."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    clean = "".join(ch for ch in base if ch.isprintable() and ch not in "\"';")
    if not clean.strip():
        raise ApiError(422, "material_type", "material: a file without a name")
    return clean.strip()[-MAX_NAME:]


def directory(hq: "HQ") -> Path:
    path = hq.settings.dir / DIRECTORY
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def store(hq: "HQ", data: bytes) -> str:
    """Write the bytes under a new random name (mode 0600); returns the name."""
    name = secrets.token_hex(16)
    fd = os.open(directory(hq) / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    return name


def load(hq: "HQ", stored_as: str) -> bytes:
    if not all(c in "0123456789abcdef" for c in stored_as):  # only names `store` made
        raise ApiError(404, "not_found", "no such material")
    return (directory(hq) / stored_as).read_bytes()


def discard(hq: "HQ", names: list[str]) -> None:
    """Remove files whose rows were not committed (a refused or failed submission leaves nothing)."""
    for name in names:
        try:
            (directory(hq) / name).unlink()
        except FileNotFoundError:
            pass


def disposition(filename: str) -> str:
    """`attachment` with the name quoted safely (RFC 6266/5987): a download, never shown inline."""
    from urllib.parse import quote

    ascii_name = "".join(c if c.isascii() and c.isalnum() or c in "._-" else "_" for c in filename) or "material"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"

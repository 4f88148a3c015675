"""The site logo: sniffed by content, size-limited, SVG rewritten from an allow-list.

An SVG is a document that browsers execute: it is rebuilt from allowed
elements, attributes and values by `kitctl.site.svg`, and refused with one
line when it has anything active or external.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kitcore.errors import InvalidInput
from kitctl.site.svg import sanitize_svg

MAX_LOGO_BYTES = 512 * 1024
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"


@dataclass(frozen=True)
class Logo:
    data: bytes
    ext: str  # "png" | "jpg" | "svg"

    @property
    def filename(self) -> str:
        return f"logo.{self.ext}"


def load_logo(path: Path) -> Logo:
    """The logo at `path`, or InvalidInput with one line saying why it is refused."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_LOGO_BYTES + 1)
    except OSError as exc:
        raise InvalidInput(f"cannot read logo {path}: {exc.strerror or exc}") from None
    return check_logo(data, str(path))


def check_logo(data: bytes, name: str = "data") -> Logo:
    """Classify `data` by its bytes (never by file name) and validate it."""
    if len(data) > MAX_LOGO_BYTES:
        raise InvalidInput(f"logo {name} is larger than {MAX_LOGO_BYTES // 1024} KiB")
    if not data:
        raise InvalidInput(f"logo {name} is empty")
    if data.startswith(_PNG_MAGIC):
        _check_png(data, name)
        return Logo(data, "png")
    if data.startswith(_JPEG_MAGIC):
        if not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
            raise InvalidInput(f"logo {name} is a truncated JPEG")
        return Logo(data, "jpg")
    if _looks_like_xml(data):
        return Logo(sanitize_svg(data, name), "svg")
    raise InvalidInput(f"logo {name} is not a PNG, JPEG or SVG image")


def _check_png(data: bytes, name: str) -> None:
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise InvalidInput(f"logo {name} is a malformed PNG (no IHDR chunk)")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if not (1 <= width <= 4096 and 1 <= height <= 4096):
        raise InvalidInput(f"logo {name} is {width}x{height} pixels; at most 4096x4096 is accepted")


def _looks_like_xml(data: bytes) -> bool:
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"<?xml") or head.startswith(b"<svg") or head.startswith(b"<!--") or head.startswith(b"<!DOCTYPE")

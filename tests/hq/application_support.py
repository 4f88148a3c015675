"""What the application tests send: real file headers (PDF, PNG, JPEG) and a JSON application body."""

from __future__ import annotations

import base64
from typing import Any

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 17
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 20


def material(kind: str, data: bytes = PDF, filename: str | None = None, expires_on: str | None = None) -> dict[str, Any]:
    ext = "pdf" if data.startswith(PDF[:5]) else "png" if data.startswith(PNG[:8]) else "jpg"
    name = filename or f"{kind}.{ext}"
    body: dict[str, Any] = {"kind": kind, "filename": name, "content_base64": base64.b64encode(data).decode()}
    if expires_on:
        body["expires_on"] = expires_on
    return body


def application(email: str = "boss@xingchen.cn", name: str = "星辰网络科技有限公司", categories: tuple[str, ...] = ("game",),
                materials: list[dict[str, Any]] | None = None, **over: Any) -> dict[str, Any]:
    mats = materials if materials is not None else [material("identity"), *(material(c, PNG) for c in categories)]
    return {"applicant": "company", "name": name, "email": email, "categories": list(categories), "regions": ["CN"],
            "tier": "pro", "domain": "shop.xingchen.cn", **over, "materials": mats}

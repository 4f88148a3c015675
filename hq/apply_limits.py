"""Limits of the public application endpoints: submissions per address, and bodies sized to the materials.

Anyone may apply, so each address may send only a few submissions (`POST /v1/applications`, `…/resubmit`,
the `/apply` page's application and resubmission forms): a token bucket per address in this worker's memory, `KIT_HQ_APPLY_BURST` (5)
at once, refilled at `KIT_HQ_APPLY_PER_HOUR` (20) an hour. The address is the connection's as the server
gives it (uvicorn's, which honours X-Forwarded-For only from the proxies it trusts). It is checked before
the body is read, so a refused upload costs nothing, and refused with 429, one line (a short page in both
languages on `/apply`), and nothing stored.

The body limit of these paths follows from the documented material limits: at most one identity document
and one qualification per category (MAX_MATERIALS), each at most application_files.MAX_FILE_BYTES — as
base64 in JSON for the API, as multipart for the page — plus room for the form's other fields.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from hq import application_files as files
from hq.ratelimit import RateLimiter
from kitcore.errorbody import error_body
from kitcore.licence.tiers import CATEGORIES

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Send

MAX_MATERIALS = 1 + len(CATEGORIES)  # an identity document and one qualification per category
FIELDS = 64 * 1024  # everything but the files: names, address, categories, regions, JSON or multipart framing
API_BODY_BYTES = MAX_MATERIALS * ((files.MAX_FILE_BYTES + 2) // 3 * 4 + 4096) + FIELDS  # base64 in JSON
PAGE_BODY_BYTES = MAX_MATERIALS * (files.MAX_FILE_BYTES + 4096) + FIELDS  # multipart: each part's headers
PAGE = ("<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>kitctl</title></head><body><main>"
        "<p lang=\"zh-CN\">提交过于频繁：请 {wait} 秒后再试，本次提交未保存。</p>"
        "<p lang=\"en\">Too many submissions from your address: try again in {wait} s. Nothing was stored.</p>"
        "</main></body></html>")


SUBMIT_PATHS = ("/v1/applications", "/apply", "/apply/resubmit")


def limited(method: str, path: str) -> bool:
    """The submissions the per-address limit counts: an application or a resubmission, on the API or the page
    (not a progress look-up: its secret is 128 bits, and the same 404 answers every wrong one)."""
    return method == "POST" and (path in SUBMIT_PATHS or (path.startswith("/v1/applications/")
                                                          and path.endswith("/resubmit")))


class ApplyRateLimit:
    """ASGI middleware: refuse an address's submission beyond its bucket, before the body is read."""

    def __init__(self, app: "ASGIApp", burst: int, per_hour: float) -> None:
        self.app = app
        self.buckets = RateLimiter(per_hour / 3600.0, burst)

    async def __call__(self, scope: dict[str, Any], receive: "Receive", send: "Send") -> None:
        if scope["type"] != "http" or not limited(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        address = (scope.get("client") or ("unknown",))[0]
        wait = self.buckets.allow(f"apply:{address}")
        if not wait:
            await self.app(scope, receive, send)
            return
        seconds = max(1, round(wait))
        if scope["path"].startswith("/apply"):
            body, kind = PAGE.format(wait=seconds).encode(), b"text/html; charset=utf-8"
        else:
            body, kind = orjson.dumps(error_body("rate_limited", f"too many submissions from your address; retry in "
                                                                 f"{seconds} s (nothing was stored)")), b"application/json"
        await send({"type": "http.response.start", "status": 429, "headers": [
            (b"content-type", kind), (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(seconds).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

"""Webhook signatures: HMAC-SHA256 over "<timestamp>.<body>", checked with a time tolerance.

Header `X-Kit-Signature: v1=<hex>` and `X-Kit-Timestamp: <unix seconds>`.
Receivers call `verify_signature` (or reimplement these few lines) and reject
stale timestamps, which stops replays of a captured request.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Kit-Signature"
TIMESTAMP_HEADER = "X-Kit-Timestamp"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def verify_signature(secret: str, timestamp: str, body: bytes, signature: str, *, now: float | None = None, tolerance: int = 300) -> bool:
    """True when `signature` is ours for this body and the timestamp is within `tolerance` seconds."""
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature or "")

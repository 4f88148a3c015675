"""Posting one signed event to the site's webhook, with bounded retries and backoff."""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from plugins.notify.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

log = logging.getLogger("kit.plugins.notify")
MAX_BACKOFF_SECONDS = 8.0


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    secret: str
    retries: int
    backoff_seconds: float
    timeout_seconds: float


class DeliveryFailed(Exception):
    """The webhook did not accept the event after every attempt."""


def encode(event: str, data: dict[str, Any], delivery_id: str) -> bytes:
    document = {"event": event, "delivery_id": delivery_id, "data": data}
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def post_event(target: WebhookTarget, event: str, data: dict[str, Any], sleep: Callable[[float], None] = time.sleep) -> int:
    """POST the event; retry on connection errors, 429 and 5xx; return the attempts used."""
    import requests

    delivery_id = str(uuid.uuid4())  # the same across retries: receivers deduplicate on it
    body = encode(event, data, delivery_id)
    last = "no attempt"
    for attempt in range(target.retries + 1):
        if attempt:
            sleep(min(target.backoff_seconds * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS))
        timestamp = int(time.time())  # re-signed per attempt so a late retry is not stale
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "kitctl-notify/1",
            "X-Kit-Event": event,
            "X-Kit-Delivery": delivery_id,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(target.secret, timestamp, body),
        }
        try:
            response = requests.post(target.url, data=body, headers=headers, timeout=target.timeout_seconds, allow_redirects=False)
        except requests.RequestException as exc:
            last = type(exc).__name__
            continue
        if response.status_code < 300:
            return attempt + 1
        last = f"HTTP {response.status_code}"
        if response.status_code != 429 and response.status_code < 500:
            break  # the receiver refused this event: retrying will not change its mind
    raise DeliveryFailed(f"webhook {event} not delivered: {last}")

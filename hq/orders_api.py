"""`POST /v1/orders`: a site's orders, decided (idempotent) — served ahead of FastAPI's routing when well-formed.

Reseller clients and the payment path send single orders, one request each, so the
request's own cost counts: FastAPI's dependency machinery, its two worker-thread
hand-offs (the caller's check, then the handler) and its validation of the decoded
body cost about as much as deciding the order. `handle` answers the request every
agent sends — a JSON body that is a valid batch and a well-formed `Idempotency-Key` —
with one hand-off; anything else (no key, a body that is not a valid batch, another
content type) it hands to the FastAPI route in `hq.api_site`, whose validation errors
are the contract. Both decide through `submitted`, so a request that both could take
gets the same answer from either.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from hq import order_groups
from hq.auth import SiteCaller, get_hq, site_ordering
from hq.order_checks import SiteContext
from hq.schemas import OrderBatch

if TYPE_CHECKING:
    from starlette.requests import Request

    from hq.service import HQ

PATH = "/v1/orders"
KEY_CHARACTERS, KEY_MAX_LENGTH = r"[\x21-\x7e]", 200  # Idempotency-Key: printable ASCII, no space (the route's too)
IDEMPOTENCY_KEY = re.compile(f"{KEY_CHARACTERS}{{1,{KEY_MAX_LENGTH}}}")


def submitted(hq: "HQ", caller: SiteCaller, idempotency_key: str, batch: OrderBatch) -> Response:
    """Decide (or replay) the batch for the site; `Idempotent-Replayed: true` on a replay."""
    ctx = SiteContext(caller.site_id, caller.categories, caller.regions)
    results, replayed = order_groups.of(hq).submit(ctx, idempotency_key, batch)
    headers = {"Idempotent-Replayed": "true"} if replayed else {}
    return JSONResponse({"results": results}, headers=headers)


async def handle(request: "Request") -> Response | None:
    """The well-formed request, answered; None for any other, which the FastAPI route answers."""
    key = request.headers.get("idempotency-key")
    if key is None or not IDEMPOTENCY_KEY.fullmatch(key) or request.headers.get("content-type") != "application/json":
        return None
    batch = well_formed_batch(await request.body())
    if batch is None:
        return None
    return await run_in_threadpool(_decide, request, key, batch)


def well_formed_batch(body: bytes) -> OrderBatch | None:
    """The batch, validated as FastAPI validates a JSON body (decoded first, then the model); None if it is not one."""
    try:
        return OrderBatch.model_validate(json.loads(body))
    except (ValueError, RecursionError, ValidationError):  # not JSON, too deep, or not a valid batch
        return None


def _decide(request: "Request", idempotency_key: str, batch: OrderBatch) -> Response:
    """On a worker thread: the caller's licence (as the route's dependency checks it), then the decisions."""
    return submitted(get_hq(request), site_ordering(request), idempotency_key, batch)

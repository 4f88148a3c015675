"""`POST /v1/heartbeat`: parse, authenticate, record, answer — HQ's hottest request.

Every site beats every interval, so this path is kept lean: it runs on the
event loop (no worker thread), parses the body with `HeartbeatIn` in one
pass, answers with orjson, and on PostgreSQL records the beat together with
the others in flight (`hq.heartbeat_batch`, `hq.heartbeat_pg`). `hq.fast_paths` serves it straight from
the ASGI entry, ahead of FastAPI's routing and dependency machinery; the
FastAPI route (`hq.api_site`) documents it in the OpenAPI schema and serves
it when the app is mounted without the fast path. Both call `handle`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response

from hq import sites
from hq.auth import site_token
from hq.errors import ApiError, first_error
from hq.heartbeat_pg import BeatIn
from hq.schemas import HeartbeatIn

if TYPE_CHECKING:
    from hq.service import HQ

PATH = "/v1/heartbeat"
MAX_BODY_BYTES = 64 * 1024  # two 16 KiB maps and a version fit, with room for whitespace


async def handle(request: Request) -> Response:
    """The whole heartbeat: 401/403/413/422/429 as the contract says, else HeartbeatOut as JSON."""
    caller = await site_token(request)
    beat, health, counters = parse(await request.body())
    hq: "HQ" = request.app.state.hq
    batcher = request.app.state.beat_batcher
    if batcher is None:  # SQLite (or no lifespan): the transaction in a worker thread
        from starlette.concurrency import run_in_threadpool

        reply = await run_in_threadpool(sites.heartbeat, hq, caller.site_id, caller.jti, beat)
    else:
        done = await batcher.record(BeatIn(caller.site_id, caller.jti, beat.version, health, counters,
                                           beat.applied_seq))
        if done is None:
            raise ApiError(401, "unknown_licence", "this licence is not known to HQ")
        reply = sites.answer(hq, done.status, done.reason, done.expires_at, done.pending)
    return Response(orjson.dumps(reply), media_type="application/json")


def parse(body: bytes) -> tuple[HeartbeatIn, str, str]:
    """The validated beat, and its health and counters as JSON text; 413 or 422 when they are not acceptable."""
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(413, "too_large", f"heartbeat body is larger than {MAX_BODY_BYTES} bytes")
    try:
        beat = HeartbeatIn.model_validate_json(body or b"null")
    except ValidationError as exc:
        raise ApiError(422, "invalid_request", first_error(exc.errors())) from None
    health, counters = (_json_text(name, value) for name, value in (("health", beat.health),
                                                                    ("counters", beat.counters)))
    return beat, health, counters


def _json_text(name: str, value: dict[str, Any]) -> str:
    """`value` as JSON text PostgreSQL's json type accepts, at most `sites.MAX_JSON_BYTES` bytes."""
    try:
        text = orjson.dumps(value)
    except TypeError:  # an integer beyond 64 bits: the standard library writes those
        try:
            text = json.dumps(value, allow_nan=False).encode()
        except ValueError:
            raise ApiError(422, "invalid_request", f"{name}: numbers must be finite") from None
    if len(text) > sites.MAX_JSON_BYTES:
        raise ApiError(413, "too_large", f"{name} is larger than {sites.MAX_JSON_BYTES} bytes")
    return text.decode()

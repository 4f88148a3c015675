"""`GET /v1/commands/wait`: the push channel, a long-poll each agent keeps open.

HQ answers as soon as the site has a command pending above `after` (the
sequence the agent applied), or after `wait` seconds with none — whichever
comes first. The answer is the heartbeat's (`HeartbeatOut`): the same signed
envelopes, signed afresh, that the agent verifies with the same code. A plain
long-poll rather than a stream: one short JSON answer per command or per hold,
which every proxy passes and every load balancer times out predictably.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from hq import sites
from hq.auth import site_token
from hq.errors import ApiError, first_error

if TYPE_CHECKING:
    from starlette.requests import Request

    from hq.push import PushHub, Waiter
    from hq.push_reads import PendingReads
    from hq.service import HQ

PATH = "/v1/commands/wait"
MAX_WAIT_SECONDS = 55  # under the 60 s idle timeout most proxies apply
DEFAULT_WAIT_SECONDS = 25
MAX_SEQ = 2**63 - 1


class WaitQuery(BaseModel):
    """The query `GET /v1/commands/wait` takes (the FastAPI route in hq.api_site declares the same)."""

    after: int = Field(default=0, ge=0, le=MAX_SEQ)
    wait: int = Field(default=DEFAULT_WAIT_SECONDS, ge=0, le=MAX_WAIT_SECONDS)


async def handle(request: "Request") -> Response:
    """The fast path's entry (hq.fast_paths): the query checked as the route checks it (422 first), then `wait`."""
    try:
        query = WaitQuery.model_validate(dict(request.query_params))
    except ValidationError as exc:
        raise ApiError(422, "invalid_request", first_error(exc.errors())) from None
    return await wait(request, query.after, query.wait)


async def wait(request: "Request", after: int, seconds: int) -> Response:
    """Pending commands now, or as soon as one is queued, or none after `seconds`."""
    caller = await site_token(request)  # revoked and expired sites too: the revoke must reach them
    hq: "HQ" = request.app.state.hq
    hub: "PushHub | None" = request.app.state.push
    hold = float(min(seconds, hq.settings.push_wait_max_seconds)) if hub is not None else 0.0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + hold
    if hub is None:  # mounted without the lifespan: answer at once, like a heartbeat
        return _reply(await run_in_threadpool(sites.pending_answer, hq, caller.site_id, caller.jti, after))
    reads: "PendingReads" = request.app.state.push_reads
    with hub.waiting(caller.site_id, after) as waiter:
        gone = asyncio.ensure_future(_disconnected(request, waiter))
        try:
            while True:
                waiter.event.clear()
                reply = await reads.answer(caller.site_id, caller.jti, after)  # read with the other polls asking now
                left = deadline - loop.time()
                if reply["commands"] or left <= 0 or hub.closing or gone.done():
                    return _reply(reply)
                await waiter.wait(left)
        finally:
            gone.cancel()


async def _disconnected(request: "Request", waiter: "Waiter") -> None:
    """Return (and wake the waiter) when the agent hangs up, so its hold ends with it."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            waiter.event.set()
            return


def _reply(body: dict[str, Any]) -> Response:
    return Response(orjson.dumps(body), media_type="application/json", headers={"Cache-Control": "no-store"})

"""Serve an ASGI app with uvicorn until SIGTERM, then exit 0 after a clean shutdown.

uvicorn finishes the requests in flight on SIGTERM and then raises the signal again
with the default handler restored, so the process dies "killed by SIGTERM" (143 under
tini): supervisors and `docker stop` count a clean stop as a failure. Here a handler
of ours is in place when uvicorn restores handlers, so the re-raised signal only
records that a stop was asked for, and the caller returns 0.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Any, Iterator

STOP_SECONDS = 7.0  # requests in flight get this long; compose's stop timeout is 10 s
# FastAPI's built-in OpenTelemetry, off: kitctl exports Prometheus metrics, and the check whether a
# provider is configured (environment look-ups on every request) was a measurable share of HQ's CPU
NO_TELEMETRY: dict[str, Any] = {"tracing": False, "metrics": False, "logs": False}


def freeze_startup_heap() -> None:
    """Take every object made so far (modules, the app, its templates and schemas) out of the cyclic garbage
    collector's sight, for a process about to serve until it stops.

    They live as long as the process, so tracing them is wasted work: on every full collection while
    serving, and once more at exit, where tracing HQ's heap held a loaded host's HQ for seconds after
    its clean shutdown (10 s under the test suite's load: past `docker stop`'s timeout, killed, 137).
    Call it once, at a service's entry point: never in a process that builds apps again and again (tests).
    """
    import gc

    gc.collect()  # what starting up left as garbage is freed, not kept for ever
    gc.freeze()


def serve_asgi(app: Any, host: str, port: int, stop_timeout: float = STOP_SECONDS, **options: Any) -> int:
    """Serve until SIGTERM or SIGINT; 0 after a clean shutdown, 1 if the server never started."""
    import uvicorn

    freeze_startup_heap()

    asked: list[int] = []
    previous = {sig: signal.signal(sig, lambda number, _frame: asked.append(number))
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, timeout_graceful_shutdown=stop_timeout,
                                               **options))
        server.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if server.started else 1


@contextmanager
def served_in_thread(app: Any, host: str, port: int, name: str, **options: Any) -> Iterator[int]:
    """Serve `app` from a daemon thread until the block ends (tests, sandboxes); yields the port (0: the system's)."""
    import threading
    import time

    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, **options))
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start")
        time.sleep(0.02)
    try:
        yield int(server.servers[0].sockets[0].getsockname()[1])
    finally:
        server.should_exit = True
        thread.join(timeout=10)

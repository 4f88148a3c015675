"""A steady, bounded stream of `GET /` through a site's proxy, counting every answer that is not a 200.

Used where a deploy must not be seen by buyers (a colour change): bench/stack_bench.py prints the count,
tests/e2e/test_up.py asserts it is 0. A broken connection is a failed request as much as a 5xx.
"""

from __future__ import annotations

import http.client
import threading
import time


class SteadyLoad:
    """`clients` threads, each a keep-alive connection sending GET / (Host: `host`) with a pause between."""

    def __init__(self, port: int, clients: int, pause: float = 0.02, host: str = "localhost") -> None:
        self.port, self.clients, self.pause, self.host = port, clients, pause, host
        self.sent = self.failed = 0
        self.failures: list[str] = []
        self.when: list[str] = []  # each failure: seconds since the load began, and why
        self.began = time.monotonic()
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.client, daemon=True) for _ in range(clients)]

    def client(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        while not self.stop.is_set():
            ok, why = True, ""
            try:
                conn.request("GET", "/", headers={"Host": self.host})
                response = conn.getresponse()
                response.read()
                ok, why = response.status == 200, f"status {response.status}"
            except (OSError, http.client.HTTPException) as exc:
                ok, why = False, type(exc).__name__
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            with self.lock:
                self.sent += 1
                if not ok:
                    self.failed += 1
                    self.failures.append(why)
                    self.when.append(f"{time.monotonic() - self.began:.2f}s {why}")
            time.sleep(self.pause)
        conn.close()

    def __enter__(self) -> "SteadyLoad":
        self.began = time.monotonic()
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()

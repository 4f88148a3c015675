"""Read-only Docker Engine API calls over the local unix socket, with the standard library alone.

docker-py (with requests) costs about 0.3 s to import; the no-op check of
`kitctl up` needs three or four GETs, so it talks HTTP over the socket itself.
Anything that changes the engine goes through docker-py (`kitctl.deploy.engine`).
"""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any
from urllib.parse import quote, urlencode

from kitctl.deploy.engine import API_VERSION


class EngineError(Exception):
    """The engine could not answer; the caller falls back to the full path."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class EngineSocket:
    """One keep-alive connection to `unix://PATH`; GETs only."""

    def __init__(self, target: str, timeout: float = 10.0) -> None:
        if not target.startswith("unix://"):
            raise EngineError(f"{target} is not a unix socket")
        self._conn = _UnixConnection(target[len("unix://"):], timeout)

    def __enter__(self) -> "EngineSocket":
        return self

    def __exit__(self, *_: object) -> None:
        self._conn.close()

    def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        """The decoded JSON answer, None for a 404, EngineError for anything else."""
        url = f"/v{API_VERSION}{path}" + (f"?{urlencode(params)}" if params else "")
        try:
            self._conn.request("GET", url)
            response = self._conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise EngineError(f"engine not reachable: {exc}") from None
        if response.status == 404:
            return None
        if response.status != 200:
            raise EngineError(f"GET {path}: HTTP {response.status}")
        try:
            return json.loads(body)
        except ValueError:
            raise EngineError(f"GET {path}: not JSON") from None

    def containers(self, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        """`docker ps -a --filter …` as the engine's list (the shape docker-py's `api.containers` returns)."""
        return self.get("/containers/json", {"all": "1", "filters": json.dumps(filters)}) or []

    def image_id(self, ref: str) -> str | None:
        found = self.get(f"/images/{quote(ref, safe='/:@')}/json")
        return found["Id"] if found else None

"""Read-only Docker Engine API calls over the local unix socket, with the standard library alone.

docker-py (with requests) costs about 0.3 s to import; the no-op check of
`kitctl up` needs a few lookups and one query run inside the db container, so
it talks HTTP over the socket itself. Anything that changes the engine goes
through docker-py (`kitctl.engine`).
"""

from __future__ import annotations

import http.client
import json
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from kitctl.engine import API_VERSION
from kitcore.unixhttp import UnixHTTPClient


class HTTPClient(Protocol):
    def request(self, method: str, target: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]: ...

    def head(self, target: str) -> tuple[int, dict[str, str]]: ...

    def close(self) -> None: ...


class EngineError(Exception):
    """The engine could not answer; the caller falls back to the full path."""


class EngineSocket:
    """One keep-alive connection to `unix://PATH` (or the HTTP `client` given: the SSH one of
    `kitctl.deploy.ssh_engine`); reads, and exec for the stored licence."""

    def __init__(self, target: str, timeout: float = 10.0, client: HTTPClient | None = None) -> None:
        if client is None and not target.startswith("unix://"):
            raise EngineError(f"{target} is not a unix socket")
        self._client = client or UnixHTTPClient(target[len("unix://"):], timeout)

    def __enter__(self) -> EngineSocket:
        return self

    def __exit__(self, *_: object) -> None:
        self._client.close()

    def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        """The decoded JSON answer, None for a 404, EngineError for anything else."""
        return _decoded(path, *self._call("GET", path + (f"?{urlencode(params)}" if params else "")))

    def path_stat(self, container: str, path: str) -> dict[str, Any] | None:
        """What the engine says of a file in a container (name, size, mode, mtime), without reading it; None when
        it is not there (or the container cannot be mounted: a bind source gone)."""
        import base64

        try:
            status, headers = self._client.head(f"/v{API_VERSION}/containers/{quote(container)}/archive?"
                                                + urlencode({"path": path}))
        except (OSError, http.client.HTTPException) as exc:
            raise EngineError(f"engine not reachable: {exc}") from None
        found = {k.lower(): v for k, v in headers.items()}.get("x-docker-container-path-stat")
        if status != 200 or not found:
            return None
        try:
            return json.loads(base64.b64decode(found))
        except ValueError:
            return None

    def raw(self, path: str) -> tuple[int, bytes]:
        """(status, body) of a GET whose answer is not JSON (an archive)."""
        return self._call("GET", path)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        try:
            return self._client.request(method, f"/v{API_VERSION}{path}",
                                        json.dumps(body).encode() if body is not None else None, headers)
        except (OSError, http.client.HTTPException) as exc:
            raise EngineError(f"engine not reachable: {exc}") from None

    def exec_output(self, container: str, command: list[str], user: str = "") -> tuple[int, str]:
        """(exit code, stdout+stderr) of `command` run inside a running container (`docker exec`)."""
        status, body = self._call("POST", f"/containers/{quote(container)}/exec",
                                  {"Cmd": command, "User": user, "AttachStdout": True, "AttachStderr": True})
        exec_id = _decoded("exec create", status, body, expected=201)["Id"]
        status, body = self._call("POST", f"/exec/{exec_id}/start", {"Detach": False, "Tty": False})
        if status != 200:
            raise EngineError(f"exec start: HTTP {status}")
        code = (self.get(f"/exec/{exec_id}/json") or {}).get("ExitCode")
        if code is None:
            raise EngineError("exec: no exit code (the answer ended before the command)")
        return int(code), _demultiplexed(body)

    def containers(self, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        """`docker ps -a --filter …` as the engine's list (the shape docker-py's `api.containers` returns)."""
        return self.get("/containers/json", {"all": "1", "filters": json.dumps(filters)}) or []

    def image_id(self, ref: str) -> str | None:
        found = self.get(f"/images/{quote(ref, safe='/:@')}/json")
        return found["Id"] if found else None


def _decoded(what: str, status: int, body: bytes, expected: int = 200) -> Any:
    if status == 404 and expected == 200:
        return None
    if status != expected:
        raise EngineError(f"{what}: HTTP {status}")
    try:
        return json.loads(body)
    except ValueError:
        raise EngineError(f"{what}: not JSON") from None


def _demultiplexed(raw: bytes) -> str:
    """The text of the engine's stdout/stderr stream (8-byte frame headers: kind, 0, 0, 0, size)."""
    out, at = bytearray(), 0
    while at + 8 <= len(raw):
        size = int.from_bytes(raw[at + 4:at + 8], "big")
        out += raw[at + 8:at + 8 + size]
        at += 8 + size
    return out.decode("utf-8", "replace")

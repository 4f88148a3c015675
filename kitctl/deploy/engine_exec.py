"""Run a command in a container and read everything it wrote.

docker-py reads an exec's output from the socket under the HTTP response, past the buffer that
http.client filled while it parsed the response's headers. When the engine sends the headers and the
first output together (a quick command on a busy host), that output is lost and the exec looks silent
with exit code 0 (docker/docker-py#2042, #3332; here about one quick exec in 1,500 under load). A backup
would lose the start of its dump, `kitctl status` the licence state, `kitctl up` the admin password it
prints. These functions read through that buffer.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, Iterator

from kitcore.errors import KitError

if TYPE_CHECKING:
    from docker import APIClient
    from docker.models.containers import Container

STDOUT, STDERR = 1, 2
_HEADER = struct.Struct(">BxxxL")  # stream, three zero bytes, length (the engine's multiplexed stream)


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    stdout: bytes
    stderr: bytes
    output: bytes  # stdout and stderr as the command wrote them, interleaved


def run(api: "APIClient", container: str, command: list[str], user: str = "",
        environment: dict[str, str] | None = None) -> ExecResult:
    """Run `command` in the running `container` to its end; its exit code and all its output."""
    exec_id = create(api, container, command, user, environment)
    written = list(start(api, exec_id))
    code = api.exec_inspect(exec_id).get("ExitCode")
    return ExecResult(1 if code is None else code, _joined(written, STDOUT), _joined(written, STDERR),
                      b"".join(data for _, data in written))


def _joined(written: list[tuple[int, bytes]], stream: int) -> bytes:
    return b"".join(data for s, data in written if s == stream)


def run_in(container: "Container", command: list[str], user: str = "",
           environment: dict[str, str] | None = None) -> ExecResult:
    """`run` in a docker-py Container (what `Container.exec_run` does, with all the output)."""
    return run(container.client.api, container.id, command, user, environment)


def create(api: "APIClient", container: str, command: list[str], user: str = "",
           environment: dict[str, str] | None = None) -> str:
    """An exec of `command` in `container` with stdout and stderr attached, not started; its id."""
    return api.exec_create(container, command, stdout=True, stderr=True, user=user, environment=environment)["Id"]


def start(api: "APIClient", exec_id: str) -> Iterator[tuple[int, bytes]]:
    """Start the exec `exec_id`; its output as (STDOUT or STDERR, bytes) frames in order, until it ends."""
    response = api._post_json(api._url("/exec/{0}/start", exec_id), headers={"Connection": "Upgrade", "Upgrade": "tcp"},
                              data={"Tty": False, "Detach": False}, stream=True)
    try:
        api._raise_for_status(response)
        api._disable_socket_timeout(api._get_raw_response_socket(response))  # a dump may be quiet for a while
        yield from frames(response.raw._fp.fp)  # the buffered reader the headers came through, not the socket under it
    finally:
        response.close()


def frames(reader: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """The frames of a multiplexed exec stream read from `reader` until it ends; KitError if it ends mid-frame."""
    while header := _read_exactly(reader, _HEADER.size):
        if len(header) < _HEADER.size:
            raise KitError("the engine's exec stream ended inside a frame header")
        stream, length = _HEADER.unpack(header)
        data = _read_exactly(reader, length)
        if len(data) < length:
            raise KitError(f"the engine's exec stream ended {length - len(data)} bytes short of a frame")
        yield stream, data


def _read_exactly(reader: BinaryIO, size: int) -> bytes:
    chunks, wanted = [], size
    while wanted:
        chunk = reader.read(wanted)
        if not chunk:
            break
        chunks.append(chunk)
        wanted -= len(chunk)
    return b"".join(chunks)

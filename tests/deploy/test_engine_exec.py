"""An exec's output is read whole, even when the engine sends it in the same segment as the response's headers."""

from __future__ import annotations

import io
import json
import socket
import threading
from pathlib import Path
from typing import Iterator

import docker
import pytest

from kitcore.errors import KitError
from kitctl.deploy import engine_exec
from tests.support.exec_fake import STDERR, STDOUT, multiplexed

UPGRADED = (b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
            b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
QUICK = [(STDOUT, b"caddy\n"), (STDERR, b"a warning\n"), (STDOUT, b"")]


def _json(body: dict) -> bytes:
    data = json.dumps(body).encode()
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b" % (len(data), data)


def _answer(request: bytes) -> bytes:
    line = request.split(b"\r\n", 1)[0]
    if b"/exec/e1/start" in line:  # the headers and the whole output in one send, as a busy engine may
        return UPGRADED + multiplexed(QUICK)
    if b"/exec/e1/json" in line:
        return _json({"ExitCode": 3})
    return _json({"Id": "e1"})  # POST /containers/c1/exec


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        body += conn.recv(65536)
    return head


@pytest.fixture
def fake_engine(tmp_path: Path) -> Iterator[docker.APIClient]:
    """An Engine API on a unix socket that answers one exec; every connection closed after its answer."""
    path = tmp_path / "engine.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen()
    server.settimeout(10)

    def serve() -> None:
        try:
            while True:
                conn, _ = server.accept()
                with conn:
                    conn.sendall(_answer(_read_request(conn)))
        except OSError:
            return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    api = docker.APIClient(base_url=f"unix://{path}", version="1.41", timeout=10)
    try:
        yield api
    finally:
        api.close()
        server.shutdown(socket.SHUT_RDWR)  # wakes the accept()
        server.close()
        thread.join(5)


def test_output_sent_with_the_headers_is_read_whole(fake_engine: docker.APIClient) -> None:
    result = engine_exec.run(fake_engine, "c1", ["id", "-un"])
    assert result == engine_exec.ExecResult(3, b"caddy\n", b"a warning\n", b"caddy\na warning\n")


def test_docker_py_itself_loses_that_output(fake_engine: docker.APIClient) -> None:
    """The condition engine_exec exists for: if this fails, docker-py reads the buffer now and engine_exec may go."""
    exec_id = fake_engine.exec_create("c1", ["id", "-un"])["Id"]
    assert fake_engine.exec_start(exec_id) == b""


def test_frames_keep_their_order_and_stream() -> None:
    frames = [(STDOUT, b"a"), (STDERR, b"b" * 70_000), (STDOUT, b""), (STDOUT, b"c")]
    assert list(engine_exec.frames(io.BytesIO(multiplexed(frames)))) == frames
    assert list(engine_exec.frames(io.BytesIO(b""))) == []


@pytest.mark.parametrize("cut", [3, 8 + 2])
def test_a_stream_cut_inside_a_frame_is_an_error_not_short_output(cut: int) -> None:
    data = multiplexed([(STDOUT, b"whole"), (STDOUT, b"cut off")])
    with pytest.raises(KitError, match=r"^the engine's exec stream ended (inside a frame header|\d+ bytes short)"):
        list(engine_exec.frames(io.BytesIO(data[:len(multiplexed([(STDOUT, b"whole")])) + cut])))

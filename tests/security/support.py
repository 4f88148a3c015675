"""Raw-socket clients for the attack tests: oversized bodies, half-sent requests, and server processes."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[2]
CHUNK = 64 * 1024


def send_big_body(port: int, path: str, total: int, chunked: bool, headers: dict[str, str] | None = None,
                  seconds: float = 60.0) -> int:
    """POST `total` bytes (declared, or chunked), stopping as soon as the server answers; returns the status."""
    head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}")
    deadline = time.monotonic() + seconds
    with socket.create_connection(("127.0.0.1", port), timeout=seconds) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        sent, piece = 0, b"7" * CHUNK
        framed = f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece
        while sent < total and time.monotonic() < deadline:
            if select.select([sock], [], [], 0)[0]:
                break  # the server has answered (or closed): stop sending
            try:
                sock.sendall(framed)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += CHUNK
        if sent >= total and chunked:
            with contextlib.suppress(OSError):
                sock.sendall(b"0\r\n\r\n")
        return _status(sock, deadline)


def _status(sock: socket.socket, deadline: float) -> int:
    data = b""
    while b"\r\n" not in data and time.monotonic() < deadline:
        try:
            part = sock.recv(4096)
        except (ConnectionResetError, socket.timeout):
            break
        if not part:
            break
        data += part
    if not data.startswith(b"HTTP/1.1 "):
        raise AssertionError(f"no HTTP answer, got {data[:80]!r}")
    return int(data.split()[1])


def rss(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


@contextlib.contextmanager
def server_process(cmd: list[str], env: dict[str, str], health_url: str, log: Path) -> Iterator[subprocess.Popen]:
    """A server child process, healthy within 60 s; terminated after the block."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=full_env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    raise AssertionError(f"{cmd} exited with {proc.returncode}: {log.read_text()[-1500:]}")
                try:
                    if httpx.get(health_url, timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"{cmd} was not healthy within 60 s")
                time.sleep(0.1)
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def python_module(name: str) -> list[str]:
    return [sys.executable, "-m", name]

"""`kitctl hq serve` and `python -m hq` start a real HQ process that answers on its port."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hq.testing import free_port
from kitcore.licence.keys import HQKeyStore
from tests.hq.helpers import wait_for_process

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("how", ["kitctl", "module"])
def test_serve_starts_a_real_process(tmp_path, how):
    port = free_port()
    hq_dir = tmp_path / "hq"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if how == "kitctl":
        cmd = [sys.executable, "-m", "kitctl", "hq", "serve", "--hq-dir", str(hq_dir), "--port", str(port),
               "--registry-url", ""]
    else:
        cmd = [sys.executable, "-m", "hq"]
        env.update(KIT_HQ_DIR=str(hq_dir), KIT_HQ_BIND=f"127.0.0.1:{port}")
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_process(f"http://127.0.0.1:{port}/healthz", proc)
        keys = httpx.get(f"http://127.0.0.1:{port}/v1/keys").json()
        assert keys == HQKeyStore(hq_dir).jwks()
        assert (hq_dir / "keys").stat().st_mode & 0o777 == 0o700
        assert httpx.get(f"http://127.0.0.1:{port}/openapi.json").json()["info"]["title"] == "kitctl HQ API"
        proc.terminate()  # SIGTERM, as `docker stop` sends it: a clean stop exits 0, not 143 (issue 26)
        started = time.monotonic()
        assert proc.wait(timeout=20) == 0
        assert time.monotonic() - started < 7
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=20)


def test_serve_refuses_bad_settings(tmp_path, capsys):
    from kitctl.cli import run

    assert run(["hq", "serve", "--hq-dir", str(tmp_path), "--hq-url", "not a url"]) == 2
    assert capsys.readouterr().err.startswith("error: HQ settings")


def test_a_kept_alive_connection_outlives_uvicorns_five_second_default(tmp_path):
    """An agent asks again on the same connection as soon as its long-poll answers; a busy worker that reads the
    next request late must not have closed it (KIT_HQ_KEEP_ALIVE_SECONDS, 60 by default)."""
    import socket

    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KIT_HQ_DIR": str(tmp_path / "hq"),
           "KIT_HQ_BIND": f"127.0.0.1:{port}", "KIT_HQ_REGISTRY_URL": ""}
    proc = subprocess.Popen([sys.executable, "-m", "hq"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for_process(f"http://127.0.0.1:{port}/healthz", proc)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            reader = sock.makefile("rb")
            for _ in range(2):
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: hq\r\n\r\n")
                assert reader.readline().startswith(b"HTTP/1.1 200")  # an empty read: the connection was closed
                headers = iter(reader.readline, b"\r\n")
                length = next(int(h.split(b":")[1]) for h in headers if h.lower().startswith(b"content-length"))
                for _rest in headers:
                    pass
                assert reader.read(length) == b'{"status":"ok"}'
                time.sleep(6.5)  # past uvicorn's default keep-alive of 5 s
    finally:
        proc.terminate()
        proc.wait(timeout=20)

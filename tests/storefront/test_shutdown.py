"""`python -m storefront` stops cleanly on SIGTERM: requests in flight are answered and the exit status is 0 (issue 26)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tests.storefront.support import ROOT, free_port, write_site_files


def test_sigterm_answers_the_request_in_flight_and_exits_0(tmp_path: Path, seeded_sqlite: Path) -> None:
    db = tmp_path / "site.db"
    shutil.copyfile(seeded_sqlite, db)
    port = free_port()
    env = {**os.environ, **write_site_files(tmp_path / "site"), "KIT_DATABASE_URL": f"sqlite:///{db}",
           "KIT_BIND": f"127.0.0.1:{port}", "KIT_METRICS_BIND": f"127.0.0.1:{free_port()}",  # never the default
           "PYTHONPATH": str(ROOT), "KIT_LOG_LEVEL": "warning"}
    proc = subprocess.Popen([sys.executable, "-m", "storefront"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()[-800:]  # type: ignore[union-attr]
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "storefront did not start"
            time.sleep(0.1)
        answers: list[int] = []
        # a request whose body arrives slowly is in flight when SIGTERM comes
        with httpx.Client(base_url=base, timeout=10) as client:
            def slow_body():  # type: ignore[no-untyped-def]
                yield b"order_id=X"
                time.sleep(1.0)
                yield b"&password=whatever"

            in_flight = threading.Thread(target=lambda: answers.append(
                client.post("/order", content=slow_body(),
                            headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code))
            in_flight.start()
            time.sleep(0.4)
            proc.send_signal(signal.SIGTERM)
            stopped = time.monotonic()
            in_flight.join(10)
        assert proc.wait(timeout=15) == 0
        assert time.monotonic() - stopped < 7
        assert answers == [403], answers  # answered (the CSRF check refuses it), not dropped
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)

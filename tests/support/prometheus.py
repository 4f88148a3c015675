"""A real Prometheus (Debian's package) scraping a target on loopback, for a bounded time."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import httpx

from tests.support.postgres import free_port


@contextlib.contextmanager
def prometheus_scraping(target: str, interval_s: int = 1) -> Iterator[str]:
    """Start Prometheus scraping `target` (host:port); yield its base URL; stop it after."""
    config = (f"global:\n  scrape_interval: {interval_s}s\n"
              f"scrape_configs:\n  - job_name: kitagent\n    static_configs:\n      - targets: ['{target}']\n")
    with prometheus_running(config) as base:
        yield base


@contextlib.contextmanager
def prometheus_running(config: str, files: dict[str, str] | None = None) -> Iterator[str]:
    """Start Prometheus with `config` (prometheus.yml) and `files` beside it; yield its base URL; stop it after."""
    binary = shutil.which("prometheus")
    if binary is None:
        raise RuntimeError("Debian's prometheus is not installed")
    work = Path(tempfile.mkdtemp(prefix="kitctl-prom-"))
    for name, text in (files or {}).items():
        (work / name).write_text(text)
    (work / "prometheus.yml").write_text(config)
    port = free_port()
    proc = subprocess.Popen(
        [binary, f"--config.file={work / 'prometheus.yml'}", f"--storage.tsdb.path={work / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        shutil.rmtree(work, ignore_errors=True)


def alerts(base: str) -> list[dict[str, Any]]:
    """The alerts Prometheus holds now (pending and firing), from its API."""
    try:
        response = httpx.get(f"{base}/api/v1/alerts", timeout=5)
    except httpx.HTTPError:
        return []
    return response.json()["data"]["alerts"] if response.status_code == 200 else []


def query(base: str, promql: str) -> list[dict[str, Any]]:
    """The instant-query result vector (empty until Prometheus is ready and the first scrape lands)."""
    response = httpx.get(f"{base}/api/v1/query", params={"query": promql}, timeout=5)
    if response.status_code != 200:  # "Service Unavailable" (plain text) while the TSDB opens
        return []
    answer = response.json()
    return answer["data"]["result"] if answer.get("status") == "success" else []


def wait_for_series(base: str, promql: str, timeout: float = 30) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = query(base, promql)
            if result:
                return result
        except httpx.HTTPError:
            pass  # not listening yet
        time.sleep(0.5)
    raise AssertionError(f"Prometheus returned no series for {promql!r} within {timeout:.0f} s")

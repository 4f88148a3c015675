"""Static assets and shop pages through the real proxy (the kit's images, PostgreSQL), with ab.

Figures (issue 24), each from `ab -k -c 16 -t SECONDS` against the proxy's published port, in one run:
  - the stylesheet under the versioned name pages link, served by the proxy itself (goal ≥ 5,000/s);
  - the same file under its plain name, which the proxy hands to the storefront (the peer: how it was served);
  - the home page (keep ≥ 2,000/s, p99 ≤ 50 ms).
Also checks the versioned answer's Cache-Control and that HEAD answers without a body.

Run: python bench/static_bench.py [--seconds 8]   (needs the engine, ab, and the kit's images built from this tree)
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stack_bench import down, free_port, kitctl, site_args  # noqa: E402
from tests.storefront.support import versioned_url  # noqa: E402


def ab(url: str, seconds: int, concurrency: int = 16) -> dict[str, float]:
    out = subprocess.run(["ab", "-k", "-q", "-c", str(concurrency), "-t", str(seconds), "-n", "10000000",
                          "-H", "Host: localhost", url], capture_output=True, text=True, timeout=seconds + 60).stdout
    figure = lambda pattern: float(re.search(pattern, out).group(1))  # noqa: E731
    non_2xx = re.search(r"Non-2xx responses:\s+(\d+)", out)
    return {"rps": figure(r"Requests per second:\s+([\d.]+)"), "p50": figure(r"\n\s+50%\s+(\d+)"),
            "p99": figure(r"\n\s+99%\s+(\d+)"), "failed": figure(r"Failed requests:\s+(\d+)"),
            "non2xx": float(non_2xx.group(1)) if non_2xx else 0.0, "bytes": figure(r"Document Length:\s+(\d+)")}


def head(url: str) -> tuple[int, str, bytes]:
    request = urllib.request.Request(url, method="HEAD", headers={"Host": "localhost"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status, answer.headers.get("Cache-Control", ""), answer.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kitctl-static-") as tmp:
        project, port = f"sta{uuid.uuid4().hex[:6]}", free_port()
        try:
            kitctl("up", *site_args(Path(tmp), project, port))
            base = f"http://127.0.0.1:{port}"
            time.sleep(2)
            status, cache, body = head(base + versioned_url("app.css"))
            print(f"HEAD {versioned_url('app.css')}: {status}, Cache-Control {cache!r}, body {len(body)} bytes")
            print(f"HEAD /: {head(base + '/')[0]}")
            rows = []
            for label, path, goal in (("app.css, versioned: the proxy itself", versioned_url("app.css"), "≥ 5,000/s"),
                                      ("app.css, plain: via the storefront", "/static/app.css", "(peer)"),
                                      ("home page", "/", "≥ 2,000/s, p99 ≤ 50 ms")):
                load = os.getloadavg()[0]
                rows.append((label, ab(base + path, args.seconds), load, goal))
        finally:
            down(Path(tmp) / project)
    print(f"ab -k -c 16 -t {args.seconds} through the proxy ({os.cpu_count()} CPUs; load average before each row)")
    for label, r, load, goal in rows:
        print(f"  {label:<40} {r['rps']:>8.0f}/s  p50 {r['p50']:>3.0f} ms  p99 {r['p99']:>4.0f} ms  "
              f"{r['bytes']:.0f} B  failed {r['failed']:.0f} non-2xx {r['non2xx']:.0f}  load {load:.1f}  goal {goal}")
    print(f"  ratio proxy itself / via the storefront: {rows[0][1]['rps'] / rows[1][1]['rps']:.1f}x")


if __name__ == "__main__":
    main()

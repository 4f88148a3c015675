"""Image build figures: base image (debootstrap + import), each service image
cold (no layer cache) and warm (cache), and sizes.

    python bench/images_bench.py [--skip-base] [--json]
    python bench/images_bench.py --first-build      # one image at a time against two at a time

Builds under throwaway tags (kitctl/base:bench, kitctl/<svc>:0.0.0-bench) and
removes them afterwards; the real tags are untouched. Takes a few minutes.

`--first-build` times what a fresh machine's first `kitctl images build` (and
`make demo`) does: every image built with the layer cache on but nothing in
it. Each round builds on its own copy of the base image (a new image id, so
no layer built before matches) with an empty wheel cache (pip's own cache
stays, as the install of the kit's .venv leaves it), once with `--jobs 1`
(the peer: one image after another) and once with `--jobs 2`, and prints
both and the ratio.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BENCH_VERSION = "0.0.0-bench"
BENCH_BASE = "kitctl/base:bench"


def main() -> int:
    from kitctl.images import DEFAULT_BASE_IMAGE, SERVICES
    from kitctl.images.build import build_images, ensure_base_image
    from kitctl.engine import connect

    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-base", action="store_true", help="do not time a base image build")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--first-build", action="store_true", help="first builds, --jobs 1 against --jobs 2")
    args = parser.parse_args()
    client = connect(timeout=300)
    if args.first_build:
        return first_builds(client)
    figures: dict = {"load_average_at_start": open("/proc/loadavg").read().split()[:3]}

    if not args.skip_base:
        started = time.monotonic()
        subprocess.run([str(REPO / "images/base/build.sh"), "--force", "--tag", BENCH_BASE], check=True, capture_output=True)
        figures["base_build_seconds"] = round(time.monotonic() - started, 1)
        figures["base_size_mb"] = round(client.api.inspect_image(BENCH_BASE)["Size"] / 1e6)
        client.api.remove_image(BENCH_BASE)
    ensure_base_image(client, DEFAULT_BASE_IMAGE, REPO)

    try:
        started = time.monotonic()
        cold = build_images(client, REPO, BENCH_VERSION, list(SERVICES), no_cache=True)
        figures["cold_total_seconds"] = round(time.monotonic() - started, 1)
        started = time.monotonic()
        warm = build_images(client, REPO, BENCH_VERSION, list(SERVICES))
        figures["warm_total_seconds"] = round(time.monotonic() - started, 1)
        figures["images"] = {
            c.service: {"cold_seconds": round(c.seconds, 1), "warm_seconds": round(w.seconds, 1), "size_mb": round(c.size_bytes / 1e6)}
            for c, w in zip(cold, warm)
        }
    finally:
        remove_bench_images(client)

    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for key, value in figures.items():
            if key != "images":
                print(f"{key:>24}: {value}")
        print(f"{'image':>12} {'cold s':>8} {'warm s':>8} {'size MB':>8}")
        for service, f in figures["images"].items():
            print(f"{service:>12} {f['cold_seconds']:>8} {f['warm_seconds']:>8} {f['size_mb']:>8}")
    return 0


def remove_bench_images(client) -> None:
    """The throwaway tags this bench built (the real tags are never touched)."""
    from kitctl.images import SERVICES, image_tag

    for service in SERVICES:
        try:
            client.api.remove_image(image_tag(service, BENCH_VERSION))
        except Exception:
            pass


def first_builds(client) -> int:
    """Each round on a fresh copy of the base image, one image at a time, then two at a time."""
    import io
    import os

    from kitctl.images import DEFAULT_BASE_IMAGE, SERVICES
    from kitctl.images.build import build_images, ensure_base_image

    import subprocess
    import tempfile

    ensure_base_image(client, DEFAULT_BASE_IMAGE, REPO)
    pip_cache = subprocess.run([sys.executable, "-m", "pip", "cache", "dir"], capture_output=True, text=True,
                               check=True).stdout.strip()
    os.environ["PIP_CACHE_DIR"] = pip_cache  # pip keeps its cache; the kit's wheel cache moves to an empty one
    seconds = {}
    for jobs in (1, 2):
        os.environ["XDG_CACHE_HOME"] = tempfile.mkdtemp(prefix="kitctl-first-build-")
        base = f"kitctl/base:bench-first-{jobs}"
        load = os.getloadavg()[0]
        dockerfile = f"FROM {DEFAULT_BASE_IMAGE}\nLABEL com.kitctl.bench-first={time.time_ns()}\n"
        client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=base, rm=True)
        try:
            started = time.monotonic()
            built = build_images(client, REPO, BENCH_VERSION, list(SERVICES), base_image=base, jobs=jobs)
            seconds[jobs] = time.monotonic() - started
        finally:
            remove_bench_images(client)
            client.api.remove_image(base)
            shutil.rmtree(os.environ["XDG_CACHE_HOME"], ignore_errors=True)
        each = ", ".join(f"{b.service} {b.seconds:.1f}" for b in built)
        print(f"first build, --jobs {jobs}: {seconds[jobs]:.1f} s (load {load:.1f} -> {os.getloadavg()[0]:.1f}; "
              f"{each})", flush=True)
    print(f"--jobs 2 / --jobs 1: {seconds[2] / seconds[1]:.2f}× ({os.cpu_count()} CPUs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

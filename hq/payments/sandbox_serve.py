"""`python -m hq.payments.sandbox_serve`: the epay sandbox as a process of its own (the demo runs it in a container).

The merchant's pid and key come from a JSON file the operator's side wrote
(`{"pid": "1001", "key": "…"}`, mode 0600): HQ is configured with the same
pair, so both ends agree without the key ever being printed. Trades live in
memory: a restart forgets them (a sandbox, not a processor).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from hq.payments.sandbox_epay import EpaySandbox

PORT = 8610


def sandbox_from_file(path: Path, notify_attempts: int) -> EpaySandbox:
    """An epay sandbox knowing the one merchant in `path`; ValueError saying what is wrong, never the key."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"merchant file {path.name}: {getattr(exc, 'strerror', None) or 'not JSON'}") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) and data[k] for k in ("pid", "key")):
        raise ValueError(f"merchant file {path.name}: expected {{\"pid\": \"…\", \"key\": \"…\"}}")
    sandbox = EpaySandbox(notify_attempts=notify_attempts)
    sandbox.merchants[data["pid"]] = data["key"]
    return sandbox


def main(argv: Sequence[str] | None = None) -> int:
    from kitcore.serving import serve_asgi

    parser = argparse.ArgumentParser(prog="python -m hq.payments.sandbox_serve")
    parser.add_argument("--merchant", type=Path, required=True, help="JSON file with the merchant's pid and key")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=PORT)
    # 8 tries back off 0.5 s doubling: the last about two minutes after the payment (HQ restarting meanwhile)
    parser.add_argument("--notify-attempts", type=int, default=8, choices=range(1, 13), metavar="1..12")
    args = parser.parse_args(argv)
    try:
        sandbox = sandbox_from_file(args.merchant, args.notify_attempts)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return serve_asgi(sandbox.app(), args.host, args.port, log_level="warning")


if __name__ == "__main__":
    sys.exit(main())

"""`python -m hq.payments.sandbox_serve`: a gateway sandbox as a process of its own (the demo and the e2e tests run
it in a container).

epay: the merchant's pid and key come from a JSON file the operator's side
wrote (`--merchant`, `{"pid": "1001", "key": "…"}`, mode 0600): HQ is
configured with the same pair, so both ends agree without the key ever being
printed. Alipay and WeChat Pay: `--state`, the JSON a sandbox made on the
operator's side gives with `state()` (the gateway's own keys and the app or
merchant HQ holds the other half of), and `--url`, the base its links give
out. Trades live in memory: a restart forgets them (a sandbox, not a processor).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from typing import Any

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


def sandbox_from_state(path: Path, url: str, notify_attempts: int) -> Any:
    """An Alipay or WeChat Pay sandbox from the state file at `path`; ValueError saying what is wrong, never a key."""
    from hq.payments.sandbox_alipay import AlipaySandbox
    from hq.payments.sandbox_wechat import WechatSandbox

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"state file {path.name}: {getattr(exc, 'strerror', None) or 'not JSON'}") from None
    kinds = {"alipay": AlipaySandbox, "wechat": WechatSandbox}
    kind = kinds.get(data.get("gateway")) if isinstance(data, dict) else None
    if kind is None:
        raise ValueError(f"state file {path.name}: expected the state() of an alipay or wechat sandbox")
    try:
        sandbox = kind.from_state(data, notify_attempts=notify_attempts)
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"state file {path.name}: not the state() of a {data['gateway']} sandbox") from None
    sandbox.url = url.rstrip("/") + "/"
    return sandbox


def main(argv: Sequence[str] | None = None) -> int:
    from kitcore.serving import serve_asgi

    parser = argparse.ArgumentParser(prog="python -m hq.payments.sandbox_serve")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--merchant", type=Path, help="epay: JSON file with the merchant's pid and key")
    source.add_argument("--state", type=Path, help="alipay or wechat: JSON file a sandbox's state() wrote")
    parser.add_argument("--url", default="", help="with --state: the base URL the sandbox's links give out")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=PORT)
    # 8 tries back off 0.5 s doubling: the last about two minutes after the payment (HQ restarting meanwhile)
    parser.add_argument("--notify-attempts", type=int, default=8, choices=range(1, 13), metavar="1..12")
    args = parser.parse_args(argv)
    try:
        if args.state is not None:
            sandbox = sandbox_from_state(args.state, args.url or f"http://{args.host}:{args.port}/", args.notify_attempts)
        else:
            sandbox = sandbox_from_file(args.merchant, args.notify_attempts)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return serve_asgi(sandbox.app(), args.host, args.port, log_level="warning")


if __name__ == "__main__":
    sys.exit(main())

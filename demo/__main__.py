"""`python -m demo up|down [--root DIR]`: the README's demo command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from demo.payments import enable_payments
from demo.stack import Demo, demo_down, demo_up
from kitcore.errors import KitError


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m demo")
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--root", type=Path, default=Path(".demo"), help="where the demo keeps its state")
    args = parser.parse_args()
    demo = Demo(root=args.root.resolve(), payments=True)
    try:
        if args.action == "up":
            demo_up(demo, before_site=[enable_payments] if demo.payments else [])
        else:
            demo_down(demo)
    except KitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())

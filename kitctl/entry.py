"""The console-script entry: answers what it can before importing the CLI framework.

Typer (with pydantic for its parameter coercion) and docker-py take about half
a second to import. `kitctl --version` and a `kitctl up` that has nothing to do
are answered without them; everything else, and every doubt, goes to the full CLI.
"""

from __future__ import annotations

import os
import sys

# the only options a fast no-op `up` understands; any other argument means the full CLI decides
FAST_UP_OPTIONS = {"--site-dir": "site_dir", "--docker-host": "docker_host"}


def main() -> None:
    args = sys.argv[1:]
    if args == ["--version"]:
        from kitctl import __version__

        print(f"kitctl {__version__}")
        return
    if args[:1] == ["up"] and fast_noop_up(args[1:]):
        return
    from kitctl.cli import run

    sys.exit(run(args))


def fast_noop_up(args: list[str]) -> bool:
    """Print the no-op answer of `kitctl up ARGS` and return True, or return False to run the full CLI."""
    options = parse_fast_up_options(args)
    if options is None:
        return False
    from pathlib import Path

    from kitctl.deploy.noop import unchanged_stack

    site_dir = Path(options.get("site_dir") or os.environ.get("KITCTL_SITE_DIR") or "site")
    found = unchanged_stack(site_dir, options.get("docker_host") or os.environ.get("KITCTL_DOCKER_HOST"))
    if found is None:
        return False
    for warning in found.warnings:
        print(_styled(f"warning: {warning}", "33", sys.stderr), file=sys.stderr)
    print(_styled(found.message, "32", sys.stdout))
    if found.url:
        print(f"site: {_styled(found.url, '1', sys.stdout)}")
    return True


def parse_fast_up_options(args: list[str]) -> dict[str, str] | None:
    """`--site-dir X` / `--docker-host X` (either form), each at most once; None for anything else."""
    options: dict[str, str] = {}
    rest = list(args)
    while rest:
        flag, value = rest.pop(0), None
        if "=" in flag:
            flag, value = flag.split("=", 1)
        elif rest:
            value = rest.pop(0)
        key = FAST_UP_OPTIONS.get(flag)
        if key is None or not value or value.startswith("-") or key in options:
            return None
        options[key] = value
    return options


def _styled(text: str, sgr: str, stream) -> str:
    """ANSI colour on a terminal, plain text otherwise (NO_COLOR honoured), as rich would."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb" or not stream.isatty():
        return text
    return f"\x1b[{sgr}m{text}\x1b[0m"

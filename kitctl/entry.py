"""The console-script entry: answers `--version` before importing the CLI framework."""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        from kitctl import __version__

        print(f"kitctl {__version__}")
        return
    from kitctl.cli import run

    sys.exit(run(sys.argv[1:]))

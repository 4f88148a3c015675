"""Options shared by several commands, declared once."""

from __future__ import annotations

from pathlib import Path

import typer

HQ_KEYS = typer.Option(
    None,
    "--hq-keys",
    envvar="KITCTL_HQ_KEYS",
    help="Pinned HQ public keys (the JWKS from `kitctl hq keys export`).",
    dir_okay=False,
)

HQ_DIR = typer.Option(
    None,
    "--hq-dir",
    envvar="KITCTL_HQ_DIR",
    help="HQ state directory (signing keys, database). Default: $XDG_DATA_HOME/kitctl/hq.",
    file_okay=False,
)

JSON = typer.Option(False, "--json", help="Print JSON for machines instead of a table.")


def hq_dir_or_default(path: Path | None) -> Path:
    from kitctl.paths import default_hq_dir

    return path if path is not None else default_hq_dir()

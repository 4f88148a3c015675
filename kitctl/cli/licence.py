"""`kitctl licence …`: what a licensee can check about a token."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from kitctl.cli.options import HQ_KEYS, JSON

app = typer.Typer(help="Inspect licence tokens.", no_args_is_help=True)


@app.command()
def inspect(
    token: str = typer.Argument(..., help="The token, @FILE, or - for stdin."),
    hq_keys: Optional[Path] = HQ_KEYS,
    as_json: bool = JSON,
) -> None:
    """Show a licence's claims and whether it verifies against the pinned HQ keys."""
    from kitctl.licence.given import require_hq_keys
    from kitctl.licence.inspect import inspect_token, render_inspection

    report = inspect_token(token, require_hq_keys(hq_keys))
    render_inspection(report, as_json)
    if not report.valid:
        raise typer.Exit(2)

"""The `kitctl` command line: a thin shell over the kit's functions.

Sub-command modules are imported here but keep their own heavy imports
inside the commands, so `kitctl --help` stays fast.
"""

from __future__ import annotations

import sys

import typer

from kitcore import __version__
from kitctl.cli import deploy, hq, images, licence, plugins, render, staff

app = typer.Typer(
    name="kitctl",
    help="Deploy and operate a licensed, branded sub-site; `kitctl hq` for HQ operators.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        print(f"kitctl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
) -> None:
    """kitctl: one command from a licence to a running sub-site."""


app.add_typer(licence.app, name="licence")
app.add_typer(hq.app, name="hq")
render.register(app)
deploy.register(app)
app.add_typer(plugins.app, name="plugins")
app.add_typer(staff.app, name="admin")
images.register(app)


def run(argv: list[str]) -> int:
    """Run kitctl with `argv`; return the exit code (tests call this directly)."""
    from typer._click.exceptions import ClickException

    from kitctl.console import print_error
    from kitcore.errors import KitError

    try:
        result = app(args=argv, prog_name="kitctl", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except KitError as exc:
        print_error(str(exc))
        return exc.exit_code
    except ClickException as exc:  # usage errors: click's message, exit code 2
        from typer import rich_utils

        rich_utils.rich_format_error(exc)
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        print_error("aborted")
        return 130


def main() -> None:
    sys.exit(run(sys.argv[1:]))

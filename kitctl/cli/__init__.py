"""The `kitctl` command line: a thin shell over the kit's functions.

Only the command asked for is built: `kitctl up --help` imports and builds
`up` alone, and `kitctl --help` lists the groups (hq, licence, plugins, …)
without building their sub-commands. Sub-command modules keep their own heavy
imports inside the commands.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import sys

import typer

from kitcore import __version__

# top-level name -> (module in kitctl.cli, how it is attached): "app" groups are added under the name,
# "register" modules attach their own commands (several names each)
COMMANDS: dict[str, tuple[str, str]] = {
    "licence": ("licence", "app"), "hq": ("hq", "app"),
    **{name: ("render", "register") for name in ("render", "plan")},
    **{name: ("deploy", "register") for name in ("up", "down", "status", "logs", "upgrade", "backup", "backup-key",
                                                 "restore", "doctor", "support-bundle", "kube-manifests")},
    "plugins": ("plugins", "app"), "admin": ("staff", "app"), "export": ("export", "register"),
    "service": ("service", "app"),
    **{name: ("images", "register") for name in ("images", "bundle")},
}


def _version(value: bool) -> None:
    if value:
        print(f"kitctl {__version__}")
        raise typer.Exit()


def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
) -> None:
    """kitctl: one command from a licence to a running sub-site."""


def build(argv: list[str]) -> tuple[typer.Typer, list[str], str]:
    """The app `argv` needs, with the arguments and program name to call it with.

    `kitctl up …` runs `up` as a command of its own (no root group, whose
    unset options would make typer load pydantic just to coerce them);
    otherwise the root app with the group asked for, or every command's summary.
    """
    app = typer.Typer(
        name="kitctl",
        help="Deploy and operate a licensed, branded sub-site; `kitctl hq` for HQ operators.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    asked = next((a for a in argv if not a.startswith("-")), None)
    if asked in COMMANDS:
        _attach(app, asked, full=True)
        if argv[0] == asked and app.registered_commands:  # a plain command, named first
            return app, argv[1:], f"kitctl {asked}"
    else:  # the overview (or an unknown name, which click reports against the full list)
        for module in dict.fromkeys(COMMANDS.values()):
            _attach(app, next(n for n, m in COMMANDS.items() if m == module), full=False)
        app.registered_commands = [_listed_only(c) for c in app.registered_commands]
    app.callback()(_root)
    return app, argv, "kitctl"


def _attach(app: typer.Typer, name: str, full: bool) -> None:
    module_name, how = COMMANDS[name]
    module = importlib.import_module(f"kitctl.cli.{module_name}")
    if how == "register":
        module.register(app)
        if full:  # keep only the command asked for (a module registers several)
            app.registered_commands = [c for c in app.registered_commands if _name(c) == name]
            app.registered_groups = [g for g in app.registered_groups if g.name == name]
        return
    group = module.app
    if not full:  # the overview shows a group's name and help: its sub-commands are not built
        group = copy.copy(group)
        group.registered_commands, group.registered_groups = [], []
    app.add_typer(group, name=name)


def _listed_only(info: typer.models.CommandInfo) -> typer.models.CommandInfo:
    """The command as the overview lists it, name and summary: none of its options is built (the overview runs
    no command, and building `up`'s 40 options alone costs more than drawing the whole list)."""
    listed = copy.copy(info)
    listed.name, listed.help = _name(info), info.help or inspect.getdoc(info.callback)
    listed.callback = _listed
    return listed


def _listed() -> None:
    """Never run: stands for a command in the overview."""


def _name(info: typer.models.CommandInfo) -> str:
    return info.name or info.callback.__name__.replace("_", "-")


def run(argv: list[str]) -> int:
    """Run kitctl with `argv`; return the exit code (tests call this directly)."""
    from typer._click.exceptions import ClickException, NoArgsIsHelpError

    from kitctl.cli import help_panels
    from kitctl.console import print_error
    from kitcore.errors import KitError

    try:
        app, args, prog_name = build(argv)
        command = typer.main.get_command(app)
        help_panels.install(command)
        result = command.main(args=args, prog_name=prog_name, standalone_mode=False)
        return result if isinstance(result, int) else 0
    except NoArgsIsHelpError as exc:  # `kitctl`, `kitctl hq`: the help, and the usage error's exit code
        sys.stderr.write(exc.format_message() + "\n")
        return exc.exit_code
    except KitError as exc:
        print_error(str(exc))
        return exc.exit_code
    except ClickException as exc:  # usage errors: one line like every refusal, exit code 2
        print_error(_usage_line(exc))
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        print_error("aborted")
        return 130


def _usage_line(exc: Exception) -> str:
    """Click's message and where help is, on one line (click prints usage and a boxed message)."""
    message = " ".join(exc.format_message().split()) if hasattr(exc, "format_message") else str(exc)
    ctx = getattr(exc, "ctx", None)
    if ctx is not None:
        return f"{message} (see '{ctx.command_path} --help')"
    return message


def main() -> None:
    sys.exit(run(sys.argv[1:]))

"""What `kitctl up` and `kitctl upgrade` tell the operator: live progress, then the outcome.

Free of the CLI framework, so the entry point can run a plain `kitctl up`
without loading it (see kitctl.entry).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kitctl.deploy.up import UpOptions, UpResult


def refresh_plugin_services(site_dir: Path, host: str | None, hq_keys: Path | None, dry_run: bool = False) -> None:
    """Render again first if the newest licence (maybe sent by HQ to the agent) changes the plugin services."""
    from rich.markup import escape

    from kitctl.console import out
    from kitctl.deploy.drift import refresh_before_up
    from kitctl.engine import DEFAULT_TARGET, check_target

    check_target(host or DEFAULT_TARGET)  # a bad address is the first thing to hear about
    note = refresh_before_up(site_dir, host, hq_keys, dry_run)
    if note:
        out().print(f"[dim]{escape(note)}[/]")


def deploy_and_report(options: "UpOptions", verb: str) -> int:
    """Run `up` (or `upgrade`) with live progress; print the outcome; the exit code."""
    from kitctl.deploy.report import RichReporter
    from kitctl.deploy.steps import StepFailed
    from kitctl.deploy.up import up as run_up

    reporter = RichReporter()
    try:
        result = run_up(options, reporter)
    except StepFailed as exc:
        _show_failure(exc)
        return 1
    for warning in result.warnings:
        reporter.warn(warning)
    _print_result(result, options.dry_run, verb)
    return 0


def _show_failure(exc) -> None:
    from rich.markup import escape

    from kitctl.console import err

    console = err()
    if exc.logs.strip():
        console.print(f"[bold]last log lines of {escape(exc.service)}:[/]")
        for line in exc.logs.rstrip().splitlines():
            console.print(f"  [dim]{escape(line)}[/]")
    from kitctl.deploy.rollback import describe

    console.print("[bold red]error:[/] " + escape(f"{exc}; {describe(exc.after)}"))


def _print_result(result: "UpResult", dry_run: bool, verb: str) -> None:
    from rich.markup import escape

    from kitctl.console import out as stdout
    from kitctl.deploy.actions import summary

    out = stdout()
    if dry_run:
        out.print(f"[bold]plan for {escape(result.project)}[/] (dry run, nothing changed)")
        for action in result.actions:
            out.print(f"  {action.service:<12} {action.kind:<9} {escape(action.reason)}"
                      + (f" [dim]({action.strategy})[/]" if action.strategy else ""))
        return
    if result.nothing_to_do:
        out.print(f"[green]{summary(result.actions)}[/]")
    else:
        seconds = result.outcome.seconds if result.outcome else 0.0
        out.print(f"[bold green]{verb} done[/] in {seconds:.1f}s: {escape(summary(result.actions))}")
    if result.url:
        out.print(f"site: [bold]{escape(result.url)}[/]")
    if result.admin_output:
        out.print(f"[bold yellow]first admin created[/]: user [bold]{escape(result.admin_name)}[/], "
                  f"password [bold]{escape(result.admin_output)}[/]")
        out.print("[yellow]this password is shown only this once: keep it now[/]")

"""The console-script entry: answers what it can before importing the CLI framework.

Typer (with pydantic for its parameter coercion) takes about a third of a
second to import, docker-py as much again. `kitctl --version` is answered
without either; a plain `kitctl up` (a rendered site, at most --site-dir and
--docker-host) without typer, and without docker-py too when nothing is to be
done; a `kitctl render` whose inputs are all as the last render left them
without typer, pydantic or the licence crypto (`kitctl.render.unchanged`).
Everything else, and every doubt, goes to the full CLI.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from kitctl.console import styled

if TYPE_CHECKING:
    from pathlib import Path

# the only options a plain `up` has; any other argument means the full CLI decides
FAST_UP_OPTIONS = {"--site-dir": "site_dir", "--docker-host": "docker_host", "--remote-dir": "remote_dir"}


def main() -> None:
    args = sys.argv[1:]
    if args == ["--version"]:
        from kitcore import __version__

        print(f"kitctl {__version__}")
        return
    code = plain_up(args[1:]) if args[:1] == ["up"] else None
    if code is not None:
        sys.exit(code)
    if args[:1] == ["render"]:
        from kitctl.render.unchanged import render

        sys.exit(render(args, _full_cli))
    from kitctl import helpcache

    if not helpcache.is_help(args):
        from kitctl.cli import run

        sys.exit(run(args))
    text = helpcache.cached(args)
    if text is not None:
        sys.stdout.write(text)
        return
    from kitctl.cli import run

    with helpcache.recording(args) as code_box:
        code_box[0] = run(args)
    sys.exit(code_box[0])


def _full_cli(args: list[str]) -> int:
    from kitctl.cli import run

    return run(args)


def plain_up(args: list[str]) -> int | None:
    """Run `kitctl up ARGS` for a rendered site and return its exit code; None: the full CLI decides."""
    options = parse_fast_up_options(args)
    if options is None:
        return None
    from kitcore.sitedir import SiteDir

    site = SiteDir.chosen(options.get("site_dir"))
    site_dir = site.root
    target = options.get("docker_host") or os.environ.get("KITCTL_DOCKER_HOST") or None
    if site.needs_render():
        return None  # the site is rendered first: that is the full CLI's work
    remote_dir = options.get("remote_dir")
    if print_if_unchanged(site_dir, target, remote_dir):
        return 0
    from kitctl.console import print_error
    from kitctl.deploy import orchestrator
    from kitctl.deploy.outcome import deploy_and_report, refresh_plugin_services
    from kitctl.deploy.up import UpOptions
    from kitcore.errors import KitError

    try:
        refresh_plugin_services(site_dir, target, None)
        deployed_to = orchestrator.recorded(site_dir) or orchestrator.DEFAULT  # as the full CLI: the recorded one
        return deploy_and_report(UpOptions(site_dir=site_dir, host=target, remote_dir=remote_dir,
                                           orchestrator=deployed_to), "up")
    except KitError as exc:
        print_error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        print_error("aborted")
        return 130


def print_if_unchanged(site_dir: "Path", target: str | None, remote_dir: str | None = None) -> bool:
    """Print the no-op answer and return True when `up` has nothing to do (decided without docker-py)."""
    from kitctl.deploy.noop import unchanged_stack

    found = unchanged_stack(site_dir, target, remote_dir)
    if found is None:
        return False
    for warning in found.warnings:
        print(styled(f"warning: {warning}", "33", sys.stderr), file=sys.stderr)
    print(styled(found.message, "32", sys.stdout))
    if found.url:
        print(f"site: {styled(found.url, '1', sys.stdout)}")
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

"""`--help` drawn by kitctl.cli.help_panels: every option in its panel, within the width, colour only on a terminal,
and without importing rich (what made the first help screen slow)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from kitctl.cli import build, help_panels, run
from kitctl.cli.help_panels import ANSI, page

ROOT = Path(__file__).resolve().parents[1]


def _command_and_ctx(argv: list[str]):
    """The click command `kitctl ARGV --help` draws, and its context."""
    app, args, prog_name = build([*argv, "--help"])
    command = typer.main.get_command(app)
    help_panels.install(command)
    ctx = command.make_context(prog_name, [], resilient_parsing=True)
    for name in args[:-1]:
        command = command.get_command(ctx, name)
        ctx = command.make_context(name, [], parent=ctx, resilient_parsing=True)
    return command, ctx


def _cells(line: str) -> int:
    return help_panels._cells(ANSI.sub("", line))


def test_every_option_of_up_is_shown_once_under_its_panel_in_typers_order():
    command, ctx = _command_and_ctx(["up"])
    text = page(command, ctx, 120, colour=False)
    titles = re.findall(r"^╭─ (.+?) ─", text, flags=re.M)
    expected: list[str] = []
    for param in command.get_params(ctx):
        panel = getattr(param, "rich_help_panel", None) or "Options"
        if panel not in expected:
            expected.append(panel)
    assert titles == ["Options", *(t for t in expected if t != "Options")]
    sections = dict(zip(titles, re.split(r"^╭─ .+$", text, flags=re.M)[1:]))
    for param in command.get_params(ctx):
        panel = getattr(param, "rich_help_panel", None) or "Options"
        long_name = next(o for o in param.opts if o.startswith("--"))
        assert re.search(rf"│ {re.escape(long_name)}\b", sections[panel]), (long_name, panel)
        assert sum(len(re.findall(rf"│ {re.escape(long_name)}(?=[ /,])", s)) for s in sections.values()) == 1
    assert "[default: 180.0]" in sections["Options"]  # click's extras, from its public help record


@pytest.mark.parametrize("columns", [40, 57, 80, 100, 173])
@pytest.mark.parametrize("argv", [["up"], ["hq"], ["hq", "licence", "issue"], ["backup"]])
def test_no_line_is_wider_than_the_terminal_and_every_panel_line_is_exactly_as_wide(argv, columns):
    command, ctx = _command_and_ctx(argv)
    for colour in (False, True):
        lines = page(command, ctx, columns, colour).splitlines()
        assert lines and max(_cells(line) for line in lines) <= columns
        boxed = [line for line in lines if line and ANSI.sub("", line)[0] in "╭│╰"]
        assert boxed and {_cells(line) for line in boxed} == {columns}


def test_wide_characters_take_two_cells_and_a_word_without_spaces_is_cut_to_fit():
    app = typer.Typer()

    @app.command()
    def shop(name: str = typer.Option("", help="店铺名称" * 30 + " and 商店.example.cn as the domain")) -> None:
        """开店：品牌、域名、语言。"""

    command = typer.main.get_command(app)
    ctx = command.make_context("kitctl shop", [], resilient_parsing=True)
    lines = page(command, ctx, 60, colour=False).splitlines()
    boxed = [line for line in lines if line and line[0] in "╭│╰"]
    assert {_cells(line) for line in boxed} == {60}
    assert sum("店铺名称" in line for line in lines) >= 4  # 120 wide characters cannot fit on fewer lines
    assert "开店：品牌、域名、语言。" in "\n".join(lines)


def test_colour_changes_nothing_but_the_escape_codes():
    command, ctx = _command_and_ctx(["up"])
    plain, painted = page(command, ctx, 100, colour=False), page(command, ctx, 100, colour=True)
    assert "\x1b[" not in plain and "\x1b[1;36m--timeout\x1b[0m" in painted
    assert ANSI.sub("", painted) == plain


def test_a_group_named_alone_prints_its_help_on_stderr_and_exits_2(capsys):
    assert run(["hq"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Usage: kitctl hq [OPTIONS] COMMAND" in err and "error:" not in err
    assert re.search(r"│ licence +The licence authority", err)


def test_the_overview_lists_each_command_with_its_summary_without_building_its_options():
    app, _, _ = build(["--help"])
    command = typer.main.get_command(app)
    ctx = command.make_context("kitctl", [], resilient_parsing=True)
    up = command.get_command(ctx, "up")
    assert [p.name for p in up.params] == []  # only its name and summary were built
    text = page(command, ctx, 100, colour=False)
    assert re.search(r"│ up +Render \(when site inputs are given\) and start or update", text)
    assert re.search(r"│ support-bundle +One archive for HQ's support", text)


@pytest.mark.parametrize("args", [["--help"], ["up", "--help"]])
def test_a_first_help_imports_neither_rich_nor_pydantic(tmp_path, args):
    probe = ("import sys\nfrom kitctl.entry import main\nsys.argv = ['kitctl', *sys.argv[1:]]\n"
             "try:\n    main()\nfinally:\n    print(sorted(m for m in ('rich', 'pydantic', 'typer') if m in sys.modules),"
             " file=sys.stderr)\n")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0 and "Usage: kitctl" in done.stdout
    assert done.stderr.strip().splitlines()[-1] == "['typer']"  # drawn by the full CLI, from an empty cache


def test_an_argument_and_an_option_of_one_panel_name_are_both_shown_arguments_first():
    app = typer.Typer()

    @app.command()
    def shop(name: str = typer.Argument(..., help="The shop's name.", rich_help_panel="Site"),
             domain: str = typer.Option("localhost", help="Its domain.", rich_help_panel="Site")) -> None:
        """Open a shop."""

    command = typer.main.get_command(app)
    ctx = command.make_context("kitctl shop", ["x"], resilient_parsing=True)
    text = page(command, ctx, 80, colour=False)
    assert re.findall(r"^╭─ (.+?) ─", text, flags=re.M) == ["Site", "Options", "Site"]
    assert text.index("The shop's name.") < text.index("Its domain.") and "[default: localhost]" in text

"""`--help` drawn as typer's rich help draws it (usage, text, option and command panels), without rich.

Typer's rich help imports about 85 ms of modules (rich's markdown, syntax and
traceback machinery among them, none of which a help screen shows) and lays
each panel out through rich's table engine: a first `kitctl up --help` cost
0.22 s, most of it there. Help is a handful of boxes of wrapped text, so this
module draws them with the standard library: the same panels (typer's
`rich_help_panel` names, in the same order), colour on a terminal only (as
`kitctl.console.styled` decides), the terminal's width (COLUMNS honoured),
wide characters counted as two cells. Everything it shows comes from click's
public help API (`get_usage`, `get_help_record`, `get_params`,
`list_commands`), so defaults, env vars, ranges and required marks read as
click writes them.
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
import sys
import unicodedata
from types import MethodType
from typing import TYPE_CHECKING, Iterator

from kitctl.console import colour_on

if TYPE_CHECKING:
    from typer._click import Command, Context, HelpFormatter, Parameter

OPTIONS, ARGUMENTS, COMMANDS = "Options", "Arguments", "Commands"
BOLD, DIM, CYAN, YELLOW, RED = "1", "2", "1;36", "1;33", "31"
MIN_WIDTH, MIN_HELP_COLUMN = 40, 24
NAMES_CELLS = 26  # the names column's widest; a longer name (--with-x / --without-x) has its line to itself
OPTION_NAME = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")
Words = list[tuple[str, str]]  # (word, SGR code or "" for plain text, in which option names are highlighted)


def install(command: "Command") -> None:
    """Make every command of the tree (its sub-groups' too) draw `--help` with `page`."""
    for each in _tree(command):
        each.format_help = MethodType(_format_help, each)  # type: ignore[method-assign]


def _tree(command: "Command") -> Iterator["Command"]:
    yield command
    for sub in getattr(command, "commands", {}).values():
        yield from _tree(sub)


def _format_help(command: "Command", ctx: "Context", formatter: "HelpFormatter") -> None:
    formatter.write(page(command, ctx, width(), colour=colour_on(sys.stdout)))


def width() -> int:
    """Cells a line may take: TERMINAL_WIDTH (typer's setting), else COLUMNS or the terminal's, else 80."""
    fixed = os.environ.get("TERMINAL_WIDTH", "")
    columns = int(fixed) if fixed.isdigit() else shutil.get_terminal_size().columns
    return max(columns, MIN_WIDTH)


def page(command: "Command", ctx: "Context", columns: int, colour: bool) -> str:
    """The whole help screen of `command`, lines of at most `columns` cells."""
    paint = _Painter(colour)
    usage = command.get_usage(ctx).removeprefix("Usage: ")
    usage_words: Words = [("Usage:", YELLOW), *((w, BOLD) for w in usage.split())]
    lines = ["", *(f" {line}" for line in _wrap(usage_words, columns - 2, paint)), ""]
    lines += _description(command, columns, paint)
    params, subcommands = _param_panels(command, ctx), _command_panels(command, ctx)
    key_cells = max((_cells(name) for _, rows in params for name, _, _ in rows if _cells(name) <= NAMES_CELLS),
                    default=0)
    type_cells = max((_cells(kind) for _, rows in params for _, kind, _ in rows), default=0)
    for title, rows in params:
        lines += _panel(title, [_param_row(row, key_cells, type_cells, columns, paint) for row in rows], columns, paint)
    name_cells = max((_cells(name) for rows in subcommands.values() for name, _ in rows), default=0)
    for title, named in subcommands.items():
        body = [_command_row(name, text, name_cells, columns, paint) for name, text in named]
        lines += _panel(title, body, columns, paint)
    if command.epilog:
        lines += ["", *(f" {line}" for line in _wrap([(w, "") for w in command.epilog.split()], columns - 2, paint))]
    return "\n".join(lines) + "\n"


def _description(command: "Command", columns: int, paint: "_Painter") -> list[str]:
    """The help text: its first paragraph as one, the rest dim with their own line breaks."""
    text = inspect.cleandoc(command.help or "").partition("\f")[0].replace("\b\n", "")
    if not text and not command.deprecated:
        return []
    first, *rest = text.split("\n\n")
    lead: Words = [("(deprecated)", RED)] if command.deprecated else []
    lines = _wrap(lead + [(w, "") for w in first.split()], columns - 2, paint)
    for paragraph in rest:
        lines.append("")
        for line in paragraph.splitlines():
            lines += _wrap([(w, DIM) for w in line.split()], columns - 2, paint) or [""]
    return [f" {line}" if line else "" for line in lines] + [""]


ParamRow = tuple[str, str, Words]  # names, type, help words


def _param_panels(command: "Command", ctx: "Context") -> list[tuple[str, list[ParamRow]]]:
    """Rows per panel: the arguments' panels, then the options', each under its `rich_help_panel` (the default
    panel first), as typer orders them."""
    arguments: dict[str, list[ParamRow]] = {ARGUMENTS: []}
    options: dict[str, list[ParamRow]] = {OPTIONS: []}
    for param in command.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None:  # hidden
            continue
        is_argument = param.param_type_name == "argument"
        panel = getattr(param, "rich_help_panel", None) or (ARGUMENTS if is_argument else OPTIONS)
        (arguments if is_argument else options).setdefault(panel, []).append(_row(param, ctx, *record))
    return [(title, rows) for panels in (arguments, options) for title, rows in panels.items() if rows]


def _row(param: "Parameter", ctx: "Context", names: str, text: str) -> ParamRow:
    """Split click's record ("--opt <type>", "help  [extras]") into names, type and help words."""
    kind = ""
    shown_type = getattr(param, "display_type_rich", lambda ctx: None)(ctx)
    if shown_type and names.endswith(f" {shown_type}"):
        names, kind = names[: -len(shown_type) - 1], shown_type
    base = (param.help or "") if hasattr(param, "help") else ""
    if base.strip() and text.startswith(base):
        extras = text[len(base):].split()
    else:
        base, extras = text, []
    words: Words = [(w, "") for w in " ".join(_paragraphs(base)).split()]
    return names, kind, words + [(w, RED if w == "[required]" else DIM) for w in extras]


def _paragraphs(text: str) -> list[str]:
    """Help paragraphs with their single line breaks joined (a `\\b` paragraph keeps them)."""
    return [p.strip("\b\n") if p.startswith("\b") else p.replace("\n", " ").strip() for p in text.split("\n\n")]


def _command_panels(command: "Command", ctx: "Context") -> dict[str, list[tuple[str, str]]]:
    """Sub-commands per `rich_help_panel` (the default panel first), each with its summary."""
    panels: dict[str, list[tuple[str, str]]] = {COMMANDS: []}
    for name in getattr(command, "list_commands", lambda ctx: [])(ctx):
        sub = command.get_command(ctx, name)  # type: ignore[attr-defined]
        if sub is None or sub.hidden:
            continue
        summary = inspect.cleandoc(sub.short_help or sub.help or "").partition("\f")[0].split("\n\n")[0]
        summary = " ".join(summary.replace("\b", "").split())
        if sub.deprecated:
            summary = f"(deprecated) {summary}"
        panels.setdefault(getattr(sub, "rich_help_panel", None) or COMMANDS, []).append((name, summary))
    return {title: rows for title, rows in panels.items() if rows}


def _param_row(row: ParamRow, key_cells: int, type_cells: int, columns: int, paint: "_Painter") -> list[str]:
    names, kind, words = row
    inner, left_cells = columns - 4, key_cells + 2 + type_cells
    room = inner - left_cells - 2
    if room < MIN_HELP_COLUMN:
        return _stacked([(n, CYAN) for n in names.split()] + ([(kind, YELLOW)] if kind else []), words, inner, paint)
    type_cell = paint(kind, YELLOW) + " " * (type_cells - _cells(kind))
    if _cells(names) > key_cells:  # a line of its own; the type and help below, in their columns
        own_line = _wrap([(n, CYAN) for n in names.split()], inner, paint)
        return own_line + _beside(" " * (key_cells + 2) + type_cell, left_cells, words, room, paint)
    left = f"{paint(names, CYAN)}{' ' * (key_cells - _cells(names))}  {type_cell}"
    return _beside(left, left_cells, words, room, paint)


def _command_row(name: str, summary: str, name_cells: int, columns: int, paint: "_Painter") -> list[str]:
    words: Words = [(w, "") for w in summary.split()]
    room = columns - 4 - name_cells - 2
    if room < MIN_HELP_COLUMN:
        return _stacked([(name, CYAN)], words, columns - 4, paint)
    return _beside(paint(name, CYAN) + " " * (name_cells - _cells(name)), name_cells, words, room, paint)


def _beside(left: str, left_cells: int, words: Words, room: int, paint: "_Painter") -> list[str]:
    """A row: the painted left cell, then the words wrapped into `room` cells beside it."""
    wrapped = _wrap(words, room, paint) or [""]
    return [f"{left}  {wrapped[0]}", *(" " * (left_cells + 2) + line for line in wrapped[1:])]


def _stacked(head: Words, words: Words, inner: int, paint: "_Painter") -> list[str]:
    """A row on a narrow terminal: the names (and type), then the words indented under them."""
    return _wrap(head, inner, paint) + ["    " + line for line in _wrap(words, inner - 4, paint)]


def _panel(title: str, rows: list[list[str]], columns: int, paint: "_Painter") -> list[str]:
    """A rounded box the full width, titled, each row's lines padded to its inner width."""
    inner = columns - 4
    rule = "─" * max(columns - 5 - _cells(title), 0)
    lines = [paint("╭─ ", DIM) + title + paint(f" {rule}╮", DIM)]
    side = paint("│", DIM)
    for row in rows:
        for line in row:
            lines.append(f"{side} {line}{' ' * max(inner - _cells(_plain(line)), 0)} {side}")
    lines.append(paint("╰" + "─" * (columns - 2) + "╯", DIM))
    return lines


def _wrap(words: Words, cells: int, paint: "_Painter") -> list[str]:
    """Words filled into lines of at most `cells` cells (a longer word is cut), each line painted."""
    lines: list[Words] = []
    line: Words = []
    used = 0
    for word, sgr in words:
        for piece in _cut(word, cells):
            size = _cells(piece)
            if line and used + 1 + size > cells:
                lines.append(line)
                line, used = [], 0
            used += size + (1 if line else 0)
            line.append((piece, sgr))
    if line:
        lines.append(line)
    return [paint.words(each) for each in lines]


def _cut(word: str, cells: int) -> list[str]:
    """The word in pieces of at most `cells` cells (a word of CJK text has no space to break at)."""
    pieces, piece, used = [], "", 0
    for char in word:
        size = _char_cells(char)
        if piece and used + size > cells:
            pieces.append(piece)
            piece, used = "", 0
        piece, used = piece + char, used + size
    return pieces + [piece] if piece else pieces


def _cells(text: str) -> int:
    """Terminal cells the text takes: East Asian wide and full-width characters take two, combining marks none."""
    return sum(_char_cells(c) for c in text) if not text.isascii() else len(text)


def _char_cells(char: str) -> int:
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in "WF" else 1


ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _plain(text: str) -> str:
    return ANSI.sub("", text)


class _Painter:
    """SGR colour when the help goes to a terminal; text unchanged otherwise."""

    def __init__(self, colour: bool) -> None:
        self.colour = colour

    def __call__(self, text: str, sgr: str) -> str:
        return f"\x1b[{sgr}m{text}\x1b[0m" if self.colour and sgr and text else text

    def words(self, words: Words) -> str:
        """One line of words, runs of one style painted together; option names in plain text highlighted."""
        runs: list[tuple[str, list[str]]] = []
        for word, sgr in words:
            if runs and runs[-1][0] == sgr:
                runs[-1][1].append(word)
            else:
                runs.append((sgr, [word]))
        return " ".join(self._run(" ".join(text), sgr) for sgr, text in runs)

    def _run(self, text: str, sgr: str) -> str:
        if sgr or not self.colour:
            return self(text, sgr)
        return OPTION_NAME.sub(lambda m: self(m.group(1), CYAN), text)

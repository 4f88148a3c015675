"""Where kitctl writes for people: rich consoles on stdout and stderr."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Callable, Iterator

if TYPE_CHECKING:
    from typing import TextIO

    from rich.console import Console


# Width given to tables when stdout is not a terminal: wide enough that no image name or port list is cut.
PIPED_WIDTH = 4096


def styled(text: str, sgr: str, stream: "TextIO") -> str:
    """ANSI colour on a terminal, plain text otherwise (NO_COLOR honoured), as rich would: for the fast paths
    that answer before rich is imported (kitctl.entry)."""
    return f"\x1b[{sgr}m{text}\x1b[0m" if colour_on(stream) else text


def colour_on(stream: "TextIO") -> bool:
    """Whether what goes to `stream` is coloured: a terminal, unless NO_COLOR is set or TERM is dumb."""
    import os

    return not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb" and stream.isatty()


@lru_cache(maxsize=None)
def out() -> "Console":
    """stdout: a terminal's width on a terminal; when piped, tables keep every cell whole (`--json` for machines)."""
    from rich.console import Console, ConsoleDimensions

    class PipeWideConsole(Console):
        @property
        def size(self) -> ConsoleDimensions:
            # decided at each print: a CliRunner or a pipe may replace stdout after this console was made
            if not self.is_terminal:
                return ConsoleDimensions(PIPED_WIDTH, self._height or 25)
            return super().size

        @size.setter
        def size(self, new_size: tuple[int, int]) -> None:
            self._width, self._height = new_size

    return PipeWideConsole(highlight=False, soft_wrap=True)


@lru_cache(maxsize=None)
def err() -> "Console":
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def print_error(message: str) -> None:
    """`error: <first line>` on stderr: every refusal is one line."""
    from rich.markup import escape

    line = (message.splitlines() or ["failed"])[0]
    err().print(f"[bold red]error:[/] {escape(line)}")


def print_json(data: object) -> None:
    """Machine output: plain JSON on stdout, no colour, no wrapping."""
    import json
    import sys

    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n")


DONE = "✔ "
"""A progress line that starts with this ends its step."""


@contextmanager
def line_progress(side_by_side: bool = False) -> Iterator[Callable[[str, str], None]]:
    """A rich progress display (stderr): one spinner line per image/step.

    A step ends with a line starting with `DONE`, or when the display closes; steps that run one
    after another (`side_by_side` false) also end when the next one starts."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("[bold]{task.fields[name]:<10}"), TimeElapsedColumn(), TextColumn("{task.description}"))
    with Progress(*columns, console=err(), transient=False) as progress:
        tasks: dict[str, int] = {}
        lock = threading.Lock()

        def on_line(name: str, line: str) -> None:
            with lock:  # steps side by side report from their own threads
                if name not in tasks:
                    for other in tasks.values() if not side_by_side else ():
                        progress.update(other, completed=1, total=1)
                    tasks[name] = progress.add_task("", name=name, total=None)
                progress.update(tasks[name], description=line[:100].replace("[", r"\["))
                if line.startswith(DONE):
                    progress.update(tasks[name], completed=1, total=1)

        yield on_line
        for task in tasks.values():
            progress.update(task, completed=1, total=1)

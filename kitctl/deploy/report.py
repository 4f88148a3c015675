"""What a person sees while kitctl deploys: a line per step and per service, pull bars."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Protocol


class Reporter(Protocol):
    def note(self, text: str) -> None: ...
    def step(self, service: str, text: str) -> None: ...
    def done(self, service: str, outcome: str, seconds: float) -> None: ...
    def failed(self, service: str, message: str, seconds: float) -> None: ...
    def warn(self, text: str) -> None: ...
    def pulling(self, image: str) -> "contextmanager[Callable[[dict[str, Any]], None]]": ...


class RichReporter:
    """Reporter on the rich consoles (stdout for progress, stderr for warnings)."""

    def __init__(self, quiet: bool = False) -> None:
        from kitctl.console import err, out

        self.out, self.err, self.quiet = out(), err(), quiet
        self._lock = threading.Lock()

    def _print(self, text: str) -> None:
        with self._lock:
            self.out.print(text)

    def note(self, text: str) -> None:
        if not self.quiet:
            self._print(f"[dim]{_esc(text)}[/]")

    def step(self, service: str, text: str) -> None:
        if not self.quiet:
            self._print(f"  [cyan]{_esc(service):<12}[/] {_esc(text)}")

    def done(self, service: str, outcome: str, seconds: float) -> None:
        self._print(f"[green]✔[/] [bold]{_esc(service):<12}[/] {_esc(outcome):<28} [dim]{seconds:5.1f}s[/]")

    def failed(self, service: str, message: str, seconds: float) -> None:
        self._print(f"[red]✘[/] [bold]{_esc(service):<12}[/] {_esc(message)} [dim]{seconds:5.1f}s[/]")

    def warn(self, text: str) -> None:
        with self._lock:
            self.err.print(f"[yellow]warning:[/] {_esc(text)}")

    @contextmanager
    def pulling(self, image: str) -> Iterator[Callable[[dict[str, Any]], None]]:
        """A progress bar summing the layers' download bytes of one image pull."""
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

        layers: dict[str, tuple[int, int]] = {}
        with Progress(TextColumn("  pull [bold]{task.description}"), BarColumn(), DownloadColumn(),
                      console=self.out, transient=False, disable=self.quiet) as progress:
            task = progress.add_task(image, total=None)

            def update(event: dict[str, Any]) -> None:
                detail = event.get("progressDetail") or {}
                layer = event.get("id")
                if layer and detail.get("total"):
                    layers[layer] = (int(detail.get("current", 0)), int(detail["total"]))
                elif layer and event.get("status") in ("Download complete", "Pull complete", "Already exists"):
                    done = layers.get(layer, (0, 0))[1]
                    layers[layer] = (done, done)
                if layers:
                    progress.update(task, completed=sum(c for c, _ in layers.values()),
                                    total=sum(t for _, t in layers.values()) or None)

            yield update
            progress.update(task, completed=sum(t for _, t in layers.values()) or 1,
                            total=sum(t for _, t in layers.values()) or 1)


def _esc(text: str) -> str:
    from rich.markup import escape

    return escape(str(text))

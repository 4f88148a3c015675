"""`kitctl … --help` answered with the text the full CLI printed for the same request, before typer loads.

Building a command through typer costs about 0.1 s of CPU (typer's import and
its reading of every option's signature), more than the rest of a help
screen. Help depends only on the kit's code and on how the output is shown,
so the first `--help` of a kind is drawn by the real CLI
(`kitctl.cli.help_panels`) and what it printed is kept; later ones print it
back. The key holds the arguments, the terminal (which streams are
terminals, their size), the environment that changes how help is drawn
(colour, width) or what defaults show (KITCTL_*), the Python and kit
versions, and the size and modification time of every module of kitctl,
kitcore and typer: any edit or upgrade draws afresh. Nothing secret is in
help, and values of the environment go into the key only through a hash.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, TextIO

DISPLAY_ENV = ("COLUMNS", "LINES", "TERM", "NO_COLOR", "TERMINAL_WIDTH", "LANG", "LC_ALL", "LC_CTYPE",
               "PYTHONIOENCODING")
PACKAGES = ("kitctl", "kitcore", "typer")


def is_help(args: list[str]) -> bool:
    """`kitctl [GROUP…] [COMMAND] --help`: nothing else on the line."""
    return bool(args) and args[-1] == "--help" and len(args) <= 4 and not any(a.startswith("-") for a in args[:-1])


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kitctl" / "help"


def key(args: list[str]) -> str:
    h = hashlib.sha256()
    for part in (sys.version, repr(args), repr(_terminal()), sys.stdout.encoding or ""):
        h.update(part.encode() + b"\0")
    for name in DISPLAY_ENV + tuple(sorted(n for n in os.environ if n.startswith("KITCTL_"))):
        h.update(f"{name}={os.environ.get(name)}\0".encode())
    for package in PACKAGES:
        h.update(_fingerprint(package).encode())
    return h.hexdigest()


def _terminal() -> list[object]:
    out: list[object] = []
    for fd in (0, 1, 2):
        try:
            out.append((os.isatty(fd), tuple(os.get_terminal_size(fd))))
        except OSError:
            out.append((False, None))
    return out


def _fingerprint(package: str) -> str:
    """Size and mtime of every module of an importable package (found without importing it)."""
    root = _package_dir(package)
    if root is None:
        return f"{package}:missing"
    parts = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith(".py"):
                st = os.stat(os.path.join(dirpath, name))
                parts.append(f"{dirpath}/{name}:{st.st_size}:{st.st_mtime_ns}")
    return "\n".join(parts)


def _package_dir(package: str) -> str | None:
    """Where the package's modules are, as the import system finds them (editable installs included)."""
    from importlib.util import find_spec

    try:
        spec = find_spec(package)
    except (ImportError, ValueError):
        return None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    return locations[0] if locations else None


def cached(args: list[str]) -> str | None:
    try:
        return (cache_dir() / key(args)).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


class _Tee(io.TextIOBase):
    """Writes go to the real stream and are kept; the stream's terminal answers stay the real ones."""

    def __init__(self, real: TextIO) -> None:
        self.real, self.kept = real, io.StringIO()

    def write(self, text: str) -> int:
        self.kept.write(text)
        return self.real.write(text)

    def flush(self) -> None:
        self.real.flush()

    def isatty(self) -> bool:
        return self.real.isatty()

    def fileno(self) -> int:
        return self.real.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self.real.encoding


@contextmanager
def recording(args: list[str]) -> Iterator[list[int]]:
    """Run the full CLI inside; if it set the yielded exit code to 0, keep what it printed for `args`."""
    tee, real, code = _Tee(sys.stdout), sys.stdout, [1]
    sys.stdout = tee  # type: ignore[assignment]
    try:
        yield code
    finally:
        sys.stdout = real
    if code[0] == 0 and tee.kept.getvalue():
        _store(args, tee.kept.getvalue())


def _store(args: list[str], text: str) -> None:
    target = cache_dir() / key(args)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    except OSError:  # a read-only home: help is still printed, just not kept
        pass

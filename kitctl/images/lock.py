"""The dependency locks: every package pinned to one version and its file hashes.

`requirements.lock` holds what the kit runs with (the images install exactly it,
`--require-hashes --no-index`, plus pip and setuptools, upgraded in the images);
`requirements-dev.lock` adds the test extra and the build backend (what
`scripts/install-system.sh` installs). Both are written by `scripts/lock.sh`
(`uv pip compile --universal --generate-hashes`). This module reads them for
the image build; tests/security/test_dependency_lock.py checks them against
`pyproject.toml`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

RUNTIME_LOCK = "requirements.lock"
DEV_LOCK = "requirements-dev.lock"
IMAGE_TOOLS = ("pip", "setuptools")  # upgraded first in every Python image


@dataclass(frozen=True)
class Pin:
    name: str  # normalised (PEP 503)
    version: str
    marker: str | None
    hashes: tuple[str, ...]
    text: str  # the entry as written (continuation lines joined), for a subset lock


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, Pin]:
    """The pins of a lock written by `uv pip compile --generate-hashes` (or pip-compile)."""
    entries: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.split(" #", 1)[0].rstrip() if not line.lstrip().startswith("#") else ""
        if not stripped.strip():
            continue
        if line[:1].isspace() and entries:
            entries[-1] += " " + stripped.strip()
        else:
            entries.append(stripped.strip())
    pins: dict[str, Pin] = {}
    for entry in entries:
        pin = _pin(entry.replace("\\", " "))
        pins[pin.name] = pin
    return pins


def _pin(entry: str) -> Pin:
    requirement, *options = re.split(r"\s+(?=--hash)", entry.strip())
    spec, _, marker = requirement.partition(";")
    match = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;]+)\s*", spec)
    if match is None:
        raise ValueError(f"not an exact pin: {requirement.strip()!r}")
    hashes = tuple(h.split("=", 1)[1].strip() for h in options if h.startswith("--hash="))
    text = " \\\n    ".join([requirement.strip(), *(f"--hash={h}" for h in hashes)])
    return Pin(normalise(match.group(1)), match.group(2), marker.strip() or None, hashes, text)


def subset(pins: dict[str, Pin], names: tuple[str, ...]) -> str:
    """A lock of just `names` (each with its hashes), e.g. pip and setuptools to upgrade first."""
    return "\n".join(pins[normalise(n)].text for n in names) + "\n"

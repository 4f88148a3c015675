"""The dependency locks and pyproject.toml agree: every declared requirement (name, bounds, extras) is
pinned with hashes at a version it allows, and the dev lock pins the runtime packages at the same versions."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from kitctl.images.lock import DEV_LOCK, IMAGE_TOOLS, RUNTIME_LOCK, Pin, normalise, read_lock

ROOT = Path(__file__).resolve().parents[2]


def declared(pyproject: Path, extras: tuple[str, ...] = ()) -> list[str]:
    """The requirement strings `pyproject.toml` declares: dependencies, plus the named extras."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    found = list(project.get("dependencies", []))
    for extra in extras:
        found += project.get("optional-dependencies", {}).get(extra, [])
    return found


def disagreements(pins: dict[str, Pin], requirements: list[str]) -> list[str]:
    """One line per declared requirement the lock does not satisfy, following extras (`pyjwt[crypto]`)
    through the pinned packages' own metadata when it is installed here."""
    from packaging.requirements import Requirement

    problems: list[str] = []
    for text in requirements:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate():
            continue
        pin = pins.get(normalise(req.name))
        if pin is None:
            problems.append(f"{req.name}: declared ({text}) but not in the lock")
        elif not req.specifier.contains(pin.version, prereleases=True):
            problems.append(f"{req.name}: the lock pins {pin.version}, outside {text}")
        elif not pin.hashes:
            problems.append(f"{req.name}: pinned without a hash")
        else:
            problems += [f"{req.name}[{extra}] needs {need}" for extra in sorted(req.extras)
                         for need in _missing_for_extra(pins, req.name, pin.version, extra)]
    return problems


def _missing_for_extra(pins: dict[str, Pin], name: str, version: str, extra: str) -> list[str]:
    """The requirements the extra adds (from the installed distribution's metadata) that the lock lacks."""
    from importlib import metadata

    from packaging.requirements import Requirement

    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return [f"{name} installed to read what [{extra}] adds"]
    if normalise(dist.version) != normalise(version):
        return [f"{name}=={version} installed (found {dist.version}) to read what [{extra}] adds"]
    missing = []
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker is None or not req.marker.evaluate({"extra": extra}) or req.marker.evaluate({"extra": ""}):
            continue  # not added by this extra
        pin = pins.get(normalise(req.name))
        if pin is None or not req.specifier.contains(pin.version, prereleases=True):
            missing.append(str(req))
    return missing


def build_requires(pyproject: Path) -> list[str]:
    return tomllib.loads(pyproject.read_text(encoding="utf-8"))["build-system"]["requires"]


def tool_list(name: str) -> list[str]:
    """A requirements input of scripts/lock.sh: one name a line, `#` comments."""
    lines = (ROOT / "scripts" / name).read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def test_the_runtime_lock_satisfies_every_declared_dependency() -> None:
    pins = read_lock(ROOT / RUNTIME_LOCK)
    assert disagreements(pins, declared(ROOT / "pyproject.toml") + tool_list("lock-image-tools.in")) == []
    assert all(normalise(tool) in pins for tool in IMAGE_TOOLS)  # upgraded in the images


def test_the_dev_lock_satisfies_the_test_extra_and_the_build_backend() -> None:
    pins = read_lock(ROOT / DEV_LOCK)
    wanted = (declared(ROOT / "pyproject.toml", extras=("test",)) + build_requires(ROOT / "pyproject.toml")
              + tool_list("lock-build-backend.in"))
    assert disagreements(pins, wanted) == []


def test_both_locks_pin_the_same_versions_and_every_pin_has_hashes() -> None:
    runtime, dev = read_lock(ROOT / RUNTIME_LOCK), read_lock(ROOT / DEV_LOCK)
    assert {n: (p.version, d.version) for n, p in runtime.items() if (d := dev.get(n)) and d.version != p.version} == {}
    assert [p.name for p in [*runtime.values(), *dev.values()] if not p.hashes] == []


@pytest.mark.parametrize("requirement,problem", [
    ("typer>=999", "the lock pins"),
    ("no-such-package-kitctl>=1", "not in the lock"),
    ("pyjwt[crypto]>=2.8", "needs cryptography"),
])
def test_the_check_names_what_disagrees(requirement: str, problem: str) -> None:
    pins = dict(read_lock(ROOT / RUNTIME_LOCK))
    if "crypto" in requirement:
        pins.pop("cryptography")  # the extra's requirement is gone from the lock
    [found] = disagreements(pins, [requirement])
    assert problem in found


def test_a_pin_without_hashes_is_a_disagreement() -> None:
    pins = read_lock(ROOT / RUNTIME_LOCK)
    pins["typer"] = Pin("typer", pins["typer"].version, None, (), "typer")
    assert disagreements(pins, ["typer>=0.12"]) == ["typer: pinned without a hash"]


def test_requirements_for_other_platforms_are_not_asked_of_this_one() -> None:
    assert disagreements({}, ["pywin32>=1; sys_platform == 'win32'"]) == []

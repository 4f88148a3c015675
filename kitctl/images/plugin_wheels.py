"""Third-party plugin wheels for the images: found, checked, and described before any build starts.

`kitctl images build --plugin-wheel PATH` takes wheels (or folders of them) built outside the kit. Each
must register at least one `kitctl.plugins` entry point whose plugin loads and targets a plugin API this
kit offers: that is checked here, in a child process (a plugin's import is its own code, never run inside
kitctl), so a bad wheel is refused with one line before Docker is asked for anything. What is accepted
is recorded on the storefront and agent images (label `com.kitctl.plugins`), and so in the offline bundle.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

from kitcore.errors import InvalidInput

PLUGINS_LABEL = "com.kitctl.plugins"
PLUGIN_SERVICES = frozenset({"storefront", "agent"})  # the images whose plugin host loads plugins
_CHECK_TIMEOUT_SECONDS = 60.0

# Run in a child with the wheel first on sys.path (pure-Python wheels import straight from the zip):
# each entry point's manifest as kitctl's host would check it, or the first reason it would refuse.
_READ_MANIFESTS = """
import json, sys
sys.path.insert(0, sys.argv[1])
from plugins.contract import Plugin, check_manifest
from plugins.discovery import _import_target
out = []
for name, target in json.loads(sys.argv[2]).items():
    try:
        obj = _import_target(target)
        manifest = check_manifest(getattr(obj, "manifest", None))
        if not (isinstance(obj, type) and issubclass(obj, Plugin)):
            raise ValueError("is not a subclass of plugins.contract.Plugin")
        if manifest.name != name:
            raise ValueError(f"entry point name differs from manifest name {manifest.name!r}")
    except Exception as exc:
        print(json.dumps({"error": f"plugin {name}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"}))
        sys.exit(0)
    out.append({"name": name, "version": manifest.version, "feature": manifest.feature,
                "api_version": manifest.api_version})
print(json.dumps({"plugins": out}))
"""


@dataclass(frozen=True)
class PluginWheel:
    """One accepted wheel and the plugins it registers."""

    path: Path
    distribution: str
    version: str
    sha256: str
    plugins: tuple[dict, ...]  # {"name", "version", "feature", "api_version"} per entry point

    def record(self) -> dict:
        """What the image label and the bundle manifest keep of it (no host path)."""
        data = asdict(self)
        data["file"] = self.path.name
        del data["path"]
        data["plugins"] = list(self.plugins)
        return data


def collect(paths: list[Path]) -> list[Path]:
    """The wheel files named: files as given, folders by their `*.whl`; InvalidInput for anything else."""
    wheels: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(path.glob("*.whl"))
            if not found:
                raise InvalidInput(f"plugin wheel folder {path} holds no .whl file")
            wheels += found
        elif path.is_file() and path.name.endswith(".whl"):
            wheels.append(path)
        elif path.exists():
            raise InvalidInput(f"plugin wheel {path} is not a .whl file")
        else:
            raise InvalidInput(f"plugin wheel {path} does not exist")
    names = [w.name for w in wheels]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InvalidInput(f"plugin wheel {twice[0]} is given twice")
    return [w.resolve() for w in wheels]


def checked_wheels(paths: list[Path], source: Path) -> list[PluginWheel]:
    """Every wheel of `paths`, checked (entry points, manifests, API version, unique plugin names)."""
    accepted = [_checked(wheel, source) for wheel in collect(paths)]
    seen: dict[str, str] = {}
    for wheel in accepted:
        for plugin in wheel.plugins:
            if plugin["name"] in seen:
                raise InvalidInput(f"plugin {plugin['name']!r} is registered by both {seen[plugin['name']]} "
                                   f"and {wheel.path.name}")
            seen[plugin["name"]] = wheel.path.name
    return accepted


def label_value(wheels: list[PluginWheel]) -> str:
    """The `com.kitctl.plugins` label: JSON of the wheels' records, sorted ("[]" for none)."""
    return json.dumps(sorted((w.record() for w in wheels), key=lambda r: r["file"]), sort_keys=True,
                      separators=(",", ":"))


def _checked(wheel: Path, source: Path) -> PluginWheel:
    from plugins.contract import NAME_RE

    distribution, version = _name_version(wheel)
    entry_points = _entry_points(wheel)
    if not entry_points:
        raise InvalidInput(f"plugin wheel {wheel.name} registers no `kitctl.plugins` entry point")
    for name in entry_points:
        if not NAME_RE.match(name):
            raise InvalidInput(f"plugin wheel {wheel.name}: entry point {name!r} is not a plugin name "
                               "(lowercase letters, digits and '-', 2-40)")
    plugins = _manifests(wheel, entry_points, source)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    return PluginWheel(wheel, distribution, version, digest, tuple(plugins))


def _name_version(wheel: Path) -> tuple[str, str]:
    parts = wheel.name[: -len(".whl")].split("-")
    if len(parts) < 5:
        raise InvalidInput(f"plugin wheel {wheel.name} is not named like a wheel (NAME-VERSION-PY-ABI-PLATFORM.whl)")
    return parts[0], parts[1]


def _entry_points(wheel: Path) -> dict[str, str]:
    """{name: "module:attr"} of the wheel's `kitctl.plugins` group."""
    from plugins import ENTRY_POINT_GROUP

    try:
        with zipfile.ZipFile(wheel) as archive:
            texts = [archive.read(n).decode("utf-8") for n in archive.namelist()
                     if n.count("/") == 1 and n.endswith(".dist-info/entry_points.txt")]
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"plugin wheel {wheel.name} is unreadable: {exc}") from None
    found: dict[str, str] = {}
    for text in texts:
        parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        try:
            parser.read_string(text)
        except configparser.Error:
            raise InvalidInput(f"plugin wheel {wheel.name} has an unreadable entry_points.txt") from None
        if parser.has_section(ENTRY_POINT_GROUP):
            found.update({k.strip(): v.strip() for k, v in parser.items(ENTRY_POINT_GROUP)})
    return found


def _manifests(wheel: Path, entry_points: dict[str, str], source: Path) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(source), "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        done = subprocess.run([sys.executable, "-c", _READ_MANIFESTS, str(wheel), json.dumps(entry_points)],
                              capture_output=True, text=True, timeout=_CHECK_TIMEOUT_SECONDS, env=env, cwd=source)
    except subprocess.TimeoutExpired:
        raise InvalidInput(f"plugin wheel {wheel.name}: loading its plugins took over "
                           f"{_CHECK_TIMEOUT_SECONDS:.0f} s") from None
    lines = done.stdout.strip().splitlines()
    answer = json.loads(lines[-1]) if done.returncode == 0 and lines else None
    if answer is None:
        why = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise InvalidInput(f"plugin wheel {wheel.name} could not be checked: {why}")
    if "error" in answer:
        raise InvalidInput(f"plugin wheel {wheel.name}: {answer['error']}")
    return answer["plugins"]

"""The site's plugin choices on disk: `plugins.toml` and `secrets/plugins/NAME.json`.

Layout under a config dir (the site dir on the host; the same layout mounted
read-only into containers):

    plugins.toml                  disabled = ["notify"]; [settings.NAME] non-secret values
    secrets/plugins/NAME.json     secret values only, mode 0600 (directory 0700)

Absent files mean "nothing chosen": every licensed plugin is enabled with defaults.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kitcore.errors import InvalidInput
from kitcore.sitedir import PLUGINS_TOML, plugin_secrets_in


@dataclass
class SiteChoice:
    """What the site chose: plugins it switched off, and non-secret settings per plugin."""

    disabled: list[str] = field(default_factory=list)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)


def secrets_path(config_dir: Path, name: str) -> Path:
    return plugin_secrets_in(config_dir) / f"{name}.json"


def read_choice(config_dir: Path | None) -> SiteChoice:
    """The site's choices, or defaults when there is no plugins.toml; a one-line error if it is broken."""
    if config_dir is None:
        return SiteChoice()
    path = config_dir / PLUGINS_TOML
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return SiteChoice()
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise InvalidInput(f"cannot read {path.name}: {str(exc).splitlines()[0]}") from None
    disabled = data.get("disabled", [])
    settings = data.get("settings", {})
    if not (isinstance(disabled, list) and all(isinstance(n, str) for n in disabled)):
        raise InvalidInput(f"{path.name}: `disabled` must be a list of plugin names")
    if not (isinstance(settings, dict) and all(isinstance(v, dict) for v in settings.values())):
        raise InvalidInput(f"{path.name}: [settings.NAME] must be tables")
    return SiteChoice(disabled=sorted(set(disabled)), settings=settings)


def write_choice(config_dir: Path, choice: SiteChoice) -> None:
    """Write plugins.toml atomically (it holds no secrets, so 0644)."""
    lines = ["# Written by `kitctl plugins`; secrets live in secrets/plugins/ (0600).", ""]
    lines.append(f"disabled = {_toml_value(sorted(set(choice.disabled)))}")
    for name in sorted(choice.settings):
        values = {k: v for k, v in choice.settings[name].items() if v is not None}
        if not values:
            continue
        lines += ["", f"[settings.{_toml_key(name)}]"]
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in sorted(values.items())]
    _atomic_write(config_dir / PLUGINS_TOML, "\n".join(lines) + "\n", 0o644)


def read_secrets(config_dir: Path | None, name: str) -> dict[str, Any]:
    """A plugin's stored secret values ({} when none); a one-line error if unreadable."""
    if config_dir is None:
        return {}
    path = secrets_path(config_dir, name)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read the secrets of plugin {name}: {type(exc).__name__}") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"the secrets file of plugin {name} is not a JSON object")
    return data


def write_secrets(config_dir: Path, name: str, values: dict[str, Any]) -> None:
    """Store secret values with mode 0600 in a 0700 directory, atomically."""
    path = secrets_path(config_dir, name)
    for directory in (path.parent.parent, path.parent):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
    _atomic_write(path, json.dumps(values, sort_keys=True) + "\n", 0o600)


def raw_settings(config_dir: Path | None, name: str) -> dict[str, Any]:
    """Non-secret and secret values of one plugin merged, before schema validation."""
    merged = dict(read_choice(config_dir).settings.get(name, {}))
    merged.update(read_secrets(config_dir, name))
    return merged


def _atomic_write(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _toml_string(text: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, plus DEL, which TOML forbids raw."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)  # fullmatch: `$` also matches before a final newline


def _toml_value(value: Any) -> str:
    """TOML for the plain data settings hold (JSON string escapes are valid TOML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = [f"{_toml_key(str(k))} = {_toml_value(v)}" for k, v in value.items() if v is not None]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    raise InvalidInput(f"cannot store a {type(value).__name__} in plugins.toml")

"""The site directory's site.toml as a settings source of `SiteInputs` (lowest precedence but defaults).

Relative paths inside `site.toml` are relative to the site directory, not to
where kitctl runs. `kitctl.site.load` reads the file and sets the values for
the one validation that needs them.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_settings import PydanticBaseSettingsSource

from kitcore.errors import InvalidInput
from kitcore.sitedir import SiteDir

MAX_TOML_BYTES = 64 * 1024
_PATH_KEYS = ("logo", "hq_keys", "data_dir")
_TOML_VALUES: ContextVar[dict[str, Any]] = ContextVar("site_toml_values", default={})


class SiteTomlSource(PydanticBaseSettingsSource):
    """The values of the site directory's site.toml, read by `kitctl.site.load.load_site_inputs`."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return _TOML_VALUES.get().get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_TOML_VALUES.get())


def use_site_toml(values: dict[str, Any]) -> Token[dict[str, Any]]:
    """Make `values` what `SiteTomlSource` gives until `forget_site_toml(token)`."""
    return _TOML_VALUES.set(values)


def forget_site_toml(token: Token[dict[str, Any]]) -> None:
    _TOML_VALUES.reset(token)


def read_site_toml(site_dir: Path) -> dict[str, Any]:
    """site.toml's table with relative paths made relative to `site_dir`; {} if absent."""
    import tomllib

    path = SiteDir(site_dir).site_toml
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_TOML_BYTES + 1)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    if len(raw) > MAX_TOML_BYTES:
        raise InvalidInput(f"{path} is larger than {MAX_TOML_BYTES // 1024} KiB")
    try:
        values = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path} is not valid TOML: {str(exc).splitlines()[0]}") from None
    values.pop("site_dir", None)
    for key in _PATH_KEYS:
        if isinstance(values.get(key), str):
            values[key] = str(site_dir / values[key])
    licence = values.get("licence")
    if isinstance(licence, str) and licence.startswith("@"):
        values["licence"] = "@" + str(site_dir / licence[1:])
    return values

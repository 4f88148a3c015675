"""Where a site's inputs come from, in order: flags > KITCTL_ env > site.toml > defaults.

`site.toml` lives in the site directory, so the directory is found first
(flag, then `KITCTL_SITE_DIR`, then `./site`). Relative paths inside
`site.toml` are relative to the site directory, not to where kitctl runs.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Mapping

from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import PydanticBaseSettingsSource

from kitcore.errors import InvalidInput

SITE_TOML = "site.toml"
MAX_TOML_BYTES = 64 * 1024
_PATH_KEYS = ("logo", "hq_keys", "data_dir")
_TOML_VALUES: ContextVar[dict[str, Any]] = ContextVar("site_toml_values", default={})


class SiteTomlSource(PydanticBaseSettingsSource):
    """The values of the site directory's site.toml, read by `load_site_inputs`."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return _TOML_VALUES.get().get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_TOML_VALUES.get())


def site_dir_from(flags: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Path:
    """The site directory the flags or environment name, `./site` otherwise."""
    env = os.environ if env is None else env
    return Path(flags.get("site_dir") or env.get("KITCTL_SITE_DIR") or "site")


def load_site_inputs(flags: Mapping[str, Any]):  # -> SiteInputs
    """Validated inputs from `flags` (None = not given), env, site.toml and defaults."""
    from kitctl.site.inputs import FLAGS, SiteInputs

    given = {k: v for k, v in flags.items() if v is not None}
    site_dir = site_dir_from(given)
    token = _TOML_VALUES.set(read_site_toml(site_dir))
    try:
        return SiteInputs(**given)
    except ValidationError as exc:
        raise InvalidInput(describe_error(exc, FLAGS)) from None
    finally:
        _TOML_VALUES.reset(token)


def read_site_toml(site_dir: Path) -> dict[str, Any]:
    """site.toml's table with relative paths made relative to `site_dir`; {} if absent."""
    import tomllib

    path = site_dir / SITE_TOML
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


def describe_error(exc: ValidationError, flags: Mapping[str, str]) -> str:
    """The first validation error as one line naming the flag."""
    err = exc.errors()[0]
    field = str(err["loc"][0]) if err["loc"] else ""
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return f"unknown setting {field!r} (in {SITE_TOML} or the environment)"
    flag = flags.get(field, field)
    return f"invalid {flag}: {message}".splitlines()[0] if flag else message.splitlines()[0]

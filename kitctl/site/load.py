"""Where a site's inputs come from, in order: flags > KITCTL_ env > site.toml > recorded > defaults.

"recorded" is what the site directory was last rendered with (`kitctl.site.recorded`),
unless `--reset NAME` takes that input back to its default.

`site.toml` lives in the site directory, so the directory is found first
(`kitcore.sitedir.chosen_site_dir`: flag, then `KITCTL_SITE_DIR`, then
`./site`). Relative paths inside `site.toml` are relative to the site
directory, not to where kitctl runs (`kitctl.site.sitetoml`).
"""

from __future__ import annotations

from typing import Any, Mapping

from pydantic import ValidationError

from kitcore.errors import InvalidInput
from kitcore.sitedir import SITE_TOML, chosen_site_dir
from kitctl.site.inputs import FLAGS, SiteInputs
from kitctl.site.recorded import recorded_defaults
from kitctl.site.sitetoml import forget_site_toml, read_site_toml, use_site_toml


def load_site_inputs(flags: Mapping[str, Any]) -> SiteInputs:
    """Validated inputs from `flags` (None = not given), env, site.toml and defaults."""
    given = {k: v for k, v in flags.items() if v is not None}
    reset = given.pop("reset", None) or ()
    site_dir = chosen_site_dir(given.get("site_dir"))
    # below site.toml: what the directory was last rendered with (an input given nowhere else keeps its value)
    token = use_site_toml({**recorded_defaults(site_dir, reset), **read_site_toml(site_dir)})
    try:
        return SiteInputs(**given)
    except ValidationError as exc:
        raise InvalidInput(describe_error(exc, FLAGS)) from None
    finally:
        forget_site_toml(token)


def describe_error(exc: ValidationError, flags: Mapping[str, str]) -> str:
    """The first validation error as one line naming the flag."""
    err = exc.errors()[0]
    field = str(err["loc"][0]) if err["loc"] else ""
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return f"unknown setting {field!r} (in {SITE_TOML} or the environment)"
    flag = flags.get(field, field)
    return f"invalid {flag}: {message}".splitlines()[0] if flag else message.splitlines()[0]

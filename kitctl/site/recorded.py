"""The inputs a site directory was last rendered with, as the defaults of the next render.

`kitctl up --primary-color '#00AA00'` changes the colour and nothing else: every
input not given again (flag, `KITCTL_` variable or site.toml) keeps the value
kitctl.lock recorded; the licence and pinned keys are the site's own files
(its licence token and hq-keys.json) and the logo the one in branding/.
`--reset NAME` takes one input back to its built-in default instead.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Iterable

from kitcore.errors import InvalidInput
from kitcore.sitedir import SiteDir

if TYPE_CHECKING:
    from pathlib import Path

# Inputs kept as files in the site directory rather than in kitctl.lock.
FILE_INPUTS = ("licence", "hq_keys", "logo", "theme")
NOT_RESETTABLE = ("site_dir", "licence", "hq_keys")


def recorded_defaults(site_dir: "Path", reset: Iterable[str] = ()) -> dict[str, Any]:
    """Input name → the value this site was rendered with; {} for a directory never rendered."""
    site = SiteDir(site_dir)
    values = {**_lock_inputs(site), **_file_inputs(site)}
    for name in resettable(reset):
        values.pop(name, None)
    return values


def resettable(names: Iterable[str]) -> list[str]:
    """Input names as `SiteInputs` spells them; InvalidInput for one that cannot be reset."""
    from kitctl.site.inputs import OLD_NAMES, SiteInputs

    fields = set(SiteInputs.model_fields) - set(NOT_RESETTABLE)
    found = []
    for raw in names:
        name = raw.strip().lstrip("-").replace("-", "_")
        name = OLD_NAMES.get(name, name)
        if name not in fields:
            raise InvalidInput(f"--reset {raw}: not an input that has a default (one of: {', '.join(sorted(fields))})")
        found.append(name)
    return found


def _lock_inputs(site: SiteDir) -> dict[str, Any]:
    try:
        lock = json.loads(site.lock_file.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        return {}  # never rendered (a site dir that is a file is refused by the renderer)
    except (OSError, ValueError):
        raise InvalidInput(f"{site.lock_file} is unreadable: render with every input again") from None
    recorded = lock.get("inputs") if isinstance(lock, dict) else None
    if not isinstance(recorded, dict):
        return {}
    return {k: v for k, v in recorded.items() if v is not None and k not in FILE_INPUTS}


def _file_inputs(site: SiteDir) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if site.licence_token.is_file():
        values["licence"] = f"@{site.licence_token.absolute()}"
    if site.hq_keys.is_file():
        values["hq_keys"] = str(site.hq_keys.absolute())
    try:
        logo = json.loads(site.site_json.read_text(encoding="utf-8")).get("logo")
    except (OSError, ValueError, AttributeError):
        logo = None
    if isinstance(logo, str) and logo and (site.branding / logo).is_file():
        values["logo"] = str((site.branding / logo).absolute())
    if (site.root / "theme").is_dir():  # the checked copy the last render left (kitctl.render.site_files.THEME_DIR)
        values["theme"] = str((site.root / "theme").absolute())
    return values

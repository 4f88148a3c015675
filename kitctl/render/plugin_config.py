"""The site's plugin settings, delivered to the storefront and the agent.

`kitctl plugins` keeps them in the site dir (see plugins.site_config):
`plugins.toml` (disabled plugins, non-secret settings) and
`secrets/plugins/NAME.json` (secret values, 0600). Both services read the same
layout under `CONTAINER_DIR` (`KIT_PLUGIN_CONFIG_DIR`):

- `plugins.toml` is a read-only bind of the site dir's file (no secrets in it);
- each secret file present at render time is a compose secret with an absolute
  target under that dir, so the deploy step copies it in owned by the
  service's user, mode 0400 (a bind of the 0600 host file would be unreadable).

The compose file names the secret files, never their contents. `kitctl up`
recreates exactly the services that mount them when a file's contents change
(the deploy engine hashes bind-mounted and secret files).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Iterable

from kitcore.errors import InvalidInput
from kitcore.sitedir import PLUGIN_SECRETS, PLUGINS_TOML, SECRETS, SiteDir, plugin_secrets_in

CONTAINER_DIR = "/etc/kit/plugins"  # KIT_PLUGIN_CONFIG_DIR in storefront and agent
SECRET_PREFIX = "plugin-"  # compose secret key of plugin NAME: plugin-NAME
_PLUGIN_NAME = re.compile(r"^[a-z][a-z0-9-]{1,39}\Z")  # plugins.contract.NAME_RE
READERS = ("storefront", "agent")  # the services whose plugin host reads the settings

DEFAULT_CHOICE = """\
# The site's plugin choices, read by the storefront and the agent (mounted read-only).
# Change them with `kitctl plugins enable|disable NAME` and `kitctl plugins config NAME key=value`,
# then run `kitctl up`. Secret settings are kept in secrets/plugins/ (0600), never here.

disabled = []
"""


def secret_names(site_dir: Path) -> tuple[str, ...]:
    """Plugins that have a secrets file in the site dir now; InvalidInput for a file no plugin could own."""
    folder = plugin_secrets_in(site_dir)
    if not folder.is_dir():
        return ()
    names = []
    for path in sorted(folder.glob("*.json")):
        name = path.name[: -len(".json")]
        if not _PLUGIN_NAME.match(name):
            raise InvalidInput(f"secrets/plugins/{path.name} is not named after a plugin (NAME.json); move it away")
        if path.is_symlink() or not path.is_file():  # render copies regular files only (kitctl.render.site_secrets)
            raise InvalidInput(f"secrets/plugins/{path.name} is not a regular file")
        names.append(name)
    return tuple(names)


def secret_key(name: str) -> str:
    return f"{SECRET_PREFIX}{name}"


def secret_target(name: str) -> str:
    return f"{CONTAINER_DIR}/{SECRETS}/{PLUGIN_SECRETS}/{name}.json"


def choice_target() -> str:
    return f"{CONTAINER_DIR}/{PLUGINS_TOML}"


def service_secrets(core: Iterable[str], names: Iterable[str]) -> list[Any]:
    """A reader's `secrets:` list: its core secrets, then one long-syntax entry per plugin secrets file."""
    return [*core, *({"source": secret_key(n), "target": secret_target(n)} for n in names)]


def top_level_secrets(names: Iterable[str]) -> dict[str, dict[str, str]]:
    """Top-level compose `secrets:` entries of the plugin secrets files (paths only)."""
    return {secret_key(n): {"file": f"./{SECRETS}/{PLUGIN_SECRETS}/{n}.json"} for n in names}


def declared_secret_names(compose: Any) -> tuple[str, ...]:
    """The plugin secrets a parsed compose.yaml declares (to tell whether it must be rendered again)."""
    secrets = compose.get("secrets") if isinstance(compose, dict) else None
    if not isinstance(secrets, dict):
        return ()
    return tuple(sorted(k[len(SECRET_PREFIX):] for k in secrets if isinstance(k, str) and k.startswith(SECRET_PREFIX)))


def ensure_choice_file(site_dir: Path) -> bool:
    """Write the default plugins.toml when the site has none (the services bind it); True when written.

    Created exclusively, so a file `kitctl plugins` writes at the same moment
    is never replaced: render never overwrites the licensee's choices.
    """
    path = SiteDir(Path(site_dir)).plugins_toml
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), 0o644)
        f.write(DEFAULT_CHOICE)
        f.flush()
        os.fsync(f.fileno())
    return True

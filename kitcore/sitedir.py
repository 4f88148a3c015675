"""The layout of a rendered site directory, written down once.

`kitctl render` writes the directory, `kitctl up` / `plugins` / `status` read
it, and the containers mount parts of it; every one of them finds a file
through `SiteDir` so its name is spelled in one place. Also here: which site
directory a command means (flag, then `KITCTL_SITE_DIR`, then `./site`) and
whether it must be rendered before it can be deployed.

Standard library only: the no-op `kitctl up` fast path imports this.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

SITE_DIR_ENV = "KITCTL_SITE_DIR"
DEFAULT_SITE_DIR = "site"

# Top-level names in a site directory.
COMPOSE = "compose.yaml"
COMPOSE_ENV = ".env"  # COMPOSE_PROJECT_NAME for Compose tools (v1 refuses a top-level `name:`)
CADDYFILE = "Caddyfile"
SITE_JSON = "site.json"
AGENT_JSON = "agent.json"
HQ_KEYS = "hq-keys.json"
LOCK = "kitctl.lock"  # what the render recorded (inputs, hashes); not the writer's lock
BRANDING = "branding"
THEME_CSS = "theme.css"  # the site's stylesheet: the storefront serves it, so a colour change leaves the proxy running
SECRETS = "secrets"
MONITORING = "monitoring"  # prometheus.yml, the kit's rules, alertmanager.yml (`kitctl up --with-monitoring`)
SITE_TOML = "site.toml"  # the licensee's inputs
PLUGINS_TOML = "plugins.toml"  # the licensee's plugin choices
CACHE = ".kitctl"  # kitctl's own notes about the site; never copied to a remote host

# Inside secrets/ (each file is also the compose secret of that name).
LICENCE_TOKEN = "licence_token"
PLUGIN_SECRETS = "plugins"  # secrets/plugins/NAME.json

# Inside .kitctl/.
LICENCE_VERIFIED = "licence-verified.json"
PLUGINS_CHECKED = "plugins-checked.json"
ADMIN_CREATED = "admin-created"
ADOPTED = "adopted.json"  # volumes a site kept from its old, folder-named project

# A site runs as the compose project `kit-<site id>`: its identity, not its folder's name.
PROJECT_PREFIX = "kit-"

# Top-level names the renderer owns; everything else there is the licensee's.
OWNED = frozenset({COMPOSE, COMPOSE_ENV, CADDYFILE, SITE_JSON, AGENT_JSON, HQ_KEYS, LOCK, BRANDING, THEME_CSS, SECRETS,
                   MONITORING})


def project_name(site_id: str) -> str:
    """The compose project a site runs as (site ids are already lowercase letters, digits and '-')."""
    return PROJECT_PREFIX + site_id


def chosen_site_dir(flag: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None) -> Path:
    """The site directory a command means: `flag`, else `KITCTL_SITE_DIR`, else `./site`."""
    env = os.environ if env is None else env
    return Path(flag or env.get(SITE_DIR_ENV) or DEFAULT_SITE_DIR)


@dataclass(frozen=True)
class SiteDir:
    """One site directory; every path kitctl reads or writes in it."""

    root: Path

    @classmethod
    def chosen(cls, flag: str | os.PathLike[str] | None, env: Mapping[str, str] | None = None) -> "SiteDir":
        return cls(chosen_site_dir(flag, env))

    # -- files the renderer writes --------------------------------------------
    @property
    def compose(self) -> Path:
        return self.root / COMPOSE

    @property
    def compose_env(self) -> Path:
        return self.root / COMPOSE_ENV

    @property
    def site_json(self) -> Path:
        return self.root / SITE_JSON

    @property
    def hq_keys(self) -> Path:
        return self.root / HQ_KEYS

    @property
    def lock_file(self) -> Path:
        return self.root / LOCK

    @property
    def branding(self) -> Path:
        return self.root / BRANDING

    @property
    def theme_css(self) -> Path:
        return self.root / THEME_CSS

    @property
    def secrets(self) -> Path:
        return self.root / SECRETS

    @property
    def licence_token(self) -> Path:
        """The licence the site was last rendered with (or HQ sent since), mode 0600."""
        return licence_token_in(self.secrets)

    @property
    def plugin_secrets(self) -> Path:
        return plugin_secrets_in(self.root)

    # -- the licensee's files --------------------------------------------------
    @property
    def site_toml(self) -> Path:
        return self.root / SITE_TOML

    @property
    def plugins_toml(self) -> Path:
        return self.root / PLUGINS_TOML

    # -- kitctl's notes ----------------------------------------------------------
    @property
    def cache(self) -> Path:
        return self.root / CACHE

    @property
    def licence_verified(self) -> Path:
        return self.cache / LICENCE_VERIFIED

    @property
    def plugins_checked(self) -> Path:
        return self.cache / PLUGINS_CHECKED

    @property
    def admin_created(self) -> Path:
        return self.cache / ADMIN_CREATED

    @property
    def adopted(self) -> Path:
        return self.cache / ADOPTED

    @property
    def write_lock(self) -> Path:
        """The lock file beside the directory (not in it: the directory itself is swapped)."""
        root = self.root.absolute()
        return root.parent / f".{root.name}.lock"

    # -- rules -------------------------------------------------------------------
    @property
    def is_rendered(self) -> bool:
        return self.compose.is_file()

    def needs_render(self, inputs_given: bool = False) -> bool:
        """Render before deploying: inputs were given, the licensee keeps a site.toml, or nothing is rendered."""
        return inputs_given or self.site_toml.is_file() or not self.is_rendered

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One writer at a time per site dir (released on exit or crash).

        Render holds it while it swaps the directory; `kitctl plugins` holds it while
        it writes plugins.toml or a secrets file, so neither is lost to a swap.
        Not re-entrant: never render while holding it.
        """
        import fcntl

        path = self.write_lock
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def licence_token_in(secrets_dir: Path) -> Path:
    """The licence token file inside a site's (or a staging copy's) secrets directory."""
    return Path(secrets_dir) / LICENCE_TOKEN


def plugin_secrets_in(config_dir: Path) -> Path:
    """`secrets/plugins/` under a site dir or a container's plugin config dir (same layout)."""
    return Path(config_dir) / SECRETS / PLUGIN_SECRETS

"""Runtime settings from the environment (prefix `KIT_`), as every service of the stack reads them."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Literal

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class StorefrontSettings(BaseSettings):
    """Where the database, the site's branding and the secrets are; how to listen."""

    model_config = SettingsConfigDict(env_prefix="KIT_", extra="ignore")

    database_url: str | None = None
    database_url_file: Path | None = None
    site_config: Path | None = None  # site.json written by `kitctl render`
    secret_key_file: Path | None = None  # signs sessions and CSRF tokens
    site_key_file: Path | None = None  # opens sealed card keys
    bind: str = "0.0.0.0:8000"
    branding_dir: Path | None = None  # served at /branding/ when no proxy does it
    theme_dir: Path | None = None  # a flagship site's own shop templates (`kitctl render --theme`), used while licensed
    plugin_config_dir: Path | None = None
    plugins: str | None = None  # KIT_PLUGINS as render writes it: comma-separated; unset or empty = every licensed plugin
    payment_mode: str = "hq_approval"
    cookie_secure: Literal["auto", "always", "never"] = "auto"  # auto: Secure when the request came over HTTPS
    forwarded_allow_ips: str = "127.0.0.1"  # who may forward a client's address: the stack sets its proxy (`proxy`)
    migrate_on_start: bool = True
    checkouts_per_minute: int = 120  # per client address (many buyers may share one carrier NAT address)
    state_cache_seconds: float = 1.0  # how stale licence status / catalog pages may be
    log_level: str = "info"
    metrics_bind: str = "0.0.0.0:9465"  # /metrics on the stack's network (not through the proxy); empty: off
    max_body_bytes: int = 64 * 1024  # any request body (forms are small), refused with 413 before it is parsed

    @field_validator("bind")
    @classmethod
    def _bind_is_host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("KIT_BIND must be HOST:PORT, e.g. 0.0.0.0:8000")
        return value

    @field_validator("metrics_bind")
    @classmethod
    def _metrics_bind(cls, value: str) -> str:
        if value == "":
            return value
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError("KIT_METRICS_BIND must be HOST:PORT (e.g. 0.0.0.0:9465) or empty")
        return value

    def host_port(self) -> tuple[str, int]:
        host, _, port = self.bind.rpartition(":")
        return host.strip("[]"), int(port)

    def resolved_database_url(self) -> str:
        """The URL itself, or the contents of the secret file that holds it."""
        if self.database_url:
            return self.database_url
        if self.database_url_file:
            return self.database_url_file.read_text().strip()
        raise ValueError("set KIT_DATABASE_URL or KIT_DATABASE_URL_FILE")

    def secret_key(self) -> bytes:
        """The signing secret; a random one per process when no file is given (development)."""
        if self.secret_key_file:
            data = self.secret_key_file.read_bytes().strip()
            if len(data) < 16:
                raise ValueError("KIT_SECRET_KEY_FILE must hold at least 16 bytes")
            return data
        return secrets.token_bytes(32)

    def site_key(self) -> bytes | None:
        if not self.site_key_file:
            return None
        from sitedb.sealing import load_site_key

        return load_site_key(self.site_key_file)

    def plugin_choice(self) -> list[str] | None:
        chosen = [p.strip() for p in (self.plugins or "").split(",") if p.strip()]
        return chosen or None

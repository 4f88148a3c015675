"""The agent's configuration: `KIT_` environment variables (pydantic-settings).

Secrets (database URL with password, licence, site key) arrive as files
mounted read-only under /run/secrets; only their paths are settings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agent.probes import DEFAULT_PROBES, parse_probes
from kitcore.errors import InvalidInput


class AgentSettings(BaseSettings):
    """Everything the agent reads at start; tunables have production defaults."""

    model_config = SettingsConfigDict(env_prefix="KIT_", extra="ignore")

    database_url: str | None = None
    database_url_file: Path | None = None
    licence_file: Path
    hq_keys_file: Path
    hq_url: str | None = None
    site_key_file: Path
    site_config: Path | None = None
    plugin_config_dir: Path | None = None  # plugins.toml and secrets/plugins/ (kitctl render mounts them)
    plugins: str | None = None  # KIT_PLUGINS as render writes it: comma-separated; unset or empty = every licensed one
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    metrics_bind: str = "0.0.0.0"
    metrics_auth: Literal["none", "token"] = "none"  # token: /metrics asks for Authorization: Bearer <agent token>
    agent_token_file: Path | None = None  # the generated agent_token secret
    log_level: str = "INFO"
    docker_socket: Path = Path("/var/run/docker.sock")
    # The stack's services the agent probes for kitagent_container_up (service=url, comma-separated; empty: none).
    stack_probes: str = DEFAULT_PROBES

    # Loop tunables (HQ's heartbeat answer overrides the intervals).
    heartbeat_interval: float = Field(default=60.0, gt=0)
    sync_interval: float = Field(default=300.0, gt=0)
    min_interval: float = Field(default=5.0, gt=0)  # never loop faster than this on HQ's say-so
    forward_batch: int = Field(default=200, ge=1, le=200)
    forward_idle: float = Field(default=1.0, gt=0)  # poll period of the outbox when empty
    backoff_base: float = Field(default=1.5, gt=0)
    backoff_cap: float = Field(default=300.0, gt=0)
    review_poll: float = Field(default=30.0, gt=0)
    # An order waiting for the buyer's payment: how often to ask HQ whether it was paid (the buyer is watching).
    payment_poll: float = Field(default=2.0, gt=0)
    settlement_interval: float = Field(default=30.0, gt=0)  # answers out, statements and ledger entries in
    sync_page_limit: int = Field(default=1000, ge=1, le=1000)
    stats_interval: float = Field(default=5.0, gt=0)
    http_timeout: float = Field(default=10.0, gt=0)  # the whole of one HQ request, however slow the answer
    connect_timeout: float = Field(default=0.8, gt=0, le=30)  # a new connection to HQ or the database, DNS included
    hq_probe_interval: float = Field(default=0.5, gt=0, le=60)  # how often an unreachable HQ is asked if it is back
    stop_timeout: float = Field(default=7.0, ge=0)  # SIGTERM: time for work in flight (compose gives 10 s)
    db_wait: float = Field(default=120.0, ge=0)  # how long start waits for the database
    backlog_alert: int = Field(default=10000, ge=1)  # outbox size that raises the alert gauge

    def metrics_token(self) -> str | None:
        """The token /metrics asks for, or None when it is open (it then stays on loopback at the host)."""
        if self.metrics_auth == "none":
            return None
        if self.agent_token_file is None:
            raise InvalidInput("KIT_METRICS_AUTH=token needs KIT_AGENT_TOKEN_FILE")
        try:
            token = self.agent_token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise InvalidInput(f"cannot read KIT_AGENT_TOKEN_FILE: {exc.strerror}") from None
        if len(token) < 16:
            raise InvalidInput("KIT_AGENT_TOKEN_FILE must hold a token of at least 16 characters")
        return token

    def plugin_choice(self) -> list[str] | None:
        """The plugins the site enabled (the storefront reads the same variable the same way)."""
        chosen = [p.strip() for p in (self.plugins or "").split(",") if p.strip()]
        return chosen or None

    def probes(self) -> dict[str, str]:
        """The stack probes, or InvalidInput with one line."""
        try:
            return parse_probes(self.stack_probes)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None

    def plugins_dir(self) -> Path | None:
        """Where the plugin settings are: KIT_PLUGIN_CONFIG_DIR, else `plugins/` beside the site config."""
        if self.plugin_config_dir is not None:
            return self.plugin_config_dir
        return self.site_config.parent / "plugins" if self.site_config else None

    @model_validator(mode="after")
    def _needs_database(self) -> "AgentSettings":
        if not self.database_url and not self.database_url_file:
            raise ValueError("set KIT_DATABASE_URL or KIT_DATABASE_URL_FILE")
        return self

    def resolved_database_url(self) -> str:
        """The URL itself, reading the secret file when that is how it was given."""
        if self.database_url:
            return self.database_url
        assert self.database_url_file is not None
        try:
            return self.database_url_file.read_text().strip()
        except OSError as exc:
            raise InvalidInput(f"cannot read KIT_DATABASE_URL_FILE: {exc.strerror}") from None

    def site_json(self) -> dict:
        """The rendered site config (site id, name, …), or {} when none is mounted."""
        if self.site_config is None:
            return {}
        try:
            data = json.loads(self.site_config.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"KIT_SITE_CONFIG {self.site_config.name}: not readable JSON ({exc})") from None
        if not isinstance(data, dict):
            raise InvalidInput(f"KIT_SITE_CONFIG {self.site_config.name}: not a JSON object")
        return data


def load_settings() -> AgentSettings:
    """Settings from the environment, with one clear line when something is missing."""
    from pydantic import ValidationError

    try:
        return AgentSettings()  # type: ignore[call-arg]
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        name = f"KIT_{field.upper()}" if field else "configuration"
        raise InvalidInput(f"{name}: {err['msg']}") from None

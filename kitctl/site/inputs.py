"""The inputs of one sub-site, validated: every field a licensee can set.

Values come from flags, `KITCTL_…` environment variables, `site.toml` in the
site directory, or defaults (see `kitctl.site.load` for the precedence). Every
validator refuses with one line; nothing here touches the disk except reading
nothing at all: logos and licences are read in `kitctl.site.resolve`.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from kitcore.site import (DEFAULT_ACCENT, DEFAULT_CURRENCY, DEFAULT_LOCALE, DEFAULT_PRIMARY, DEFAULT_TIME_ZONE, Colour,
                          Currency, Locale, TimeZone)
from kitctl.site.domain import Domain, parse_domain
from kitctl.site.sitetoml import SiteTomlSource
from kitctl.site.text import check_plain_path_text, check_text

ENV_PREFIX = "KITCTL_"
# Earlier spellings of renamed settings (site.toml keys, KITCTL_ variables, kitctl.lock inputs), still read.
OLD_NAMES = {"primary_color": "primary_colour", "accent_color": "accent_colour"}
PLUGIN_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}\Z")
NETWORK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
REGISTRY = re.compile(r"^[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?(?::[0-9]{1,5})?(?:/[a-z0-9][a-z0-9._-]{0,63}){0,4}\Z")
IMAGE_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
SSH_HOST = re.compile(r"^ssh://[a-z_][a-z0-9_-]{0,31}@[A-Za-z0-9.-]{1,253}(?::[0-9]{1,5})?\Z")
UNIX_HOST = re.compile(r"^unix:///[A-Za-z0-9_./-]{1,255}\Z")
HQ_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~/-]*)?\Z")

DEFAULT_CHECKOUTS_PER_MINUTE = 120  # the storefront's own default (storefront.settings), so unset means unchanged
MAX_NAME = 80
MAX_CONTACT = 200

TextList = Annotated[list[str], NoDecode]


class SiteInputs(BaseSettings):
    """Everything `kitctl render` / `plan` / `up` take; see docs/render.md."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    site_dir: Path = Path("site")
    licence: str | None = None  # TOKEN or @FILE; read and verified in resolve
    hq_keys: Path | None = None
    hq_url: str | None = None
    name: str | None = None
    domain: str | None = None
    logo: Path | None = None
    theme: Path | None = None  # a custom shop theme directory (licence feature custom-theme); checked in resolve
    primary_colour: Colour = DEFAULT_PRIMARY
    accent_colour: Colour = DEFAULT_ACCENT
    locale: Locale = DEFAULT_LOCALE
    currency: Currency = DEFAULT_CURRENCY
    time_zone: TimeZone = DEFAULT_TIME_ZONE
    contact: str = ""
    bind_address: str = "127.0.0.1"
    metrics_bind_address: str = "127.0.0.1"  # the agent's /metrics; exposing it is a choice of its own
    http_port: int = Field(default=80, ge=1, le=65535)
    https_port: int = Field(default=443, ge=1, le=65535)
    metrics_port: int = Field(default=9464, ge=1, le=65535)
    replicas: int = Field(default=1, ge=1, le=32)  # storefront tasks on a Swarm (`up --orchestrator swarm`)
    orchestrator: Literal["engine", "swarm"] = "engine"  # what `up` deploys to (kitctl.deploy.orchestrator)
    proxy_replicas: int = Field(default=1, ge=1, le=32)  # proxy tasks on a Swarm: at most one per node (host ports)
    checkouts_per_minute: int = Field(default=DEFAULT_CHECKOUTS_PER_MINUTE, ge=1, le=100_000)  # per buyer address (storefront's limiter)
    monitoring: bool = False  # Prometheus and Alertmanager beside the site (`--with-monitoring`)
    prometheus_port: int = Field(default=9090, ge=1, le=65535)  # on 127.0.0.1 only
    alertmanager_port: int = Field(default=9093, ge=1, le=65535)  # on 127.0.0.1 only
    tls: Literal["auto", "internal", "off"] = "auto"
    data_dir: Path | None = None
    docker_host: str = "unix:///var/run/docker.sock"
    plugins: TextList = []
    categories: TextList | None = None
    hq_network: str | None = None
    registry: str | None = None
    image_tag: str | None = None

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings):  # type: ignore[override]
        init_settings.init_kwargs = current_names(init_settings.init_kwargs)  # a flag beats the env, in either name
        return (init_settings, env_settings, OldEnvNames(settings_cls), SiteTomlSource(settings_cls))

    @model_validator(mode="before")
    @classmethod
    def _old_names(cls, data: Any) -> Any:
        return current_names(data) if isinstance(data, dict) else data

    # -- text ---------------------------------------------------------------
    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        return None if v is None else check_text(v, "site name", MAX_NAME)

    @field_validator("contact")
    @classmethod
    def _contact(cls, v: str) -> str:
        return check_text(v, "contact", MAX_CONTACT, allow_empty=True)

    @field_validator("domain")
    @classmethod
    def _domain(cls, v: str | None) -> str | None:
        return None if v is None else parse_domain(v).ascii

    @field_validator("licence")
    @classmethod
    def _licence(cls, v: str | None) -> str | None:
        return None if v is None else check_plain_path_text(v, "licence")

    @field_validator("site_dir", "hq_keys", "logo", "data_dir", "theme")
    @classmethod
    def _path(cls, v: Path | None) -> Path | None:
        return None if v is None else Path(check_plain_path_text(str(v), "path"))

    # -- formats ------------------------------------------------------------
    @field_validator("bind_address", "metrics_bind_address")
    @classmethod
    def _bind(cls, v: str) -> str:
        try:
            return str(ipaddress.ip_address(v.strip("[]")))
        except ValueError:
            raise ValueError(f"bind address {v!r} is not an IP address") from None

    @field_validator("docker_host")
    @classmethod
    def _docker_host(cls, v: str) -> str:
        if UNIX_HOST.match(v) or SSH_HOST.match(v):
            return v
        raise ValueError(f"docker host {v!r} must be unix:///path or ssh://user@host[:port]")

    @field_validator("hq_url")
    @classmethod
    def _hq_url(cls, v: str | None) -> str | None:
        if v is not None and (len(v) > 512 or not HQ_URL.match(v)):
            raise ValueError(f"HQ URL {v!r} must be http(s)://host[:port][/path]")
        return v

    @field_validator("plugins", "categories", mode="before")
    @classmethod
    def _split_list(cls, v: Any) -> Any:
        if isinstance(v, str):
            return [part.strip() for part in v.split(",") if part.strip()]
        return v

    @field_validator("plugins", "categories")
    @classmethod
    def _names(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return None
        for item in v:
            if not PLUGIN_NAME.match(item):
                raise ValueError(f"{item!r} is not a plugin/category name (lowercase letters, digits, '-')")
        return sorted(set(v))

    @field_validator("hq_network")
    @classmethod
    def _network(cls, v: str | None) -> str | None:
        if v is not None and not NETWORK_NAME.match(v):
            raise ValueError(f"HQ network {v!r} is not a Docker network name")
        return v

    @field_validator("registry")
    @classmethod
    def _registry(cls, v: str | None) -> str | None:
        if v is not None and not REGISTRY.match(v):
            raise ValueError(f"registry {v!r} must be host[:port][/path] in lower case")
        return v

    @field_validator("image_tag")
    @classmethod
    def _tag(cls, v: str | None) -> str | None:
        if v is not None and not IMAGE_TAG.match(v):
            raise ValueError(f"image tag {v!r} is not a valid Docker tag")
        return v

    @model_validator(mode="after")
    def _ports_distinct(self) -> "SiteInputs":
        ports = [self.http_port, self.metrics_port] + ([] if self.tls == "off" else [self.https_port])
        if self.monitoring:
            ports += [self.prometheus_port, self.alertmanager_port]
        if len(set(ports)) != len(ports):
            raise ValueError("http, https, metrics, prometheus and alertmanager ports must differ")
        return self

    # -- derived ------------------------------------------------------------
    @property
    def parsed_domain(self) -> Domain:
        return parse_domain(self.domain or "localhost")

    @property
    def effective_tls(self) -> Literal["acme", "internal", "off"]:
        """auto means: a public CA for a real domain, self-signed for a local name."""
        if self.tls == "off":
            return "off"
        if self.tls == "internal" or self.parsed_domain.is_local:
            return "internal"
        return "acme"


def current_names(values: dict[str, Any]) -> dict[str, Any]:
    """`values` with settings given under an earlier name moved to the current one (which wins if both are given)."""
    if not any(old in values for old in OLD_NAMES):
        return values
    values = dict(values)
    for old, new in OLD_NAMES.items():
        if old in values:
            value = values.pop(old)
            values.setdefault(new, value)
    return values


class OldEnvNames(PydanticBaseSettingsSource):
    """`KITCTL_PRIMARY_COLOR` and the like: the environment under the earlier names (after the current ones)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self().get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        found = {}
        for old, new in OLD_NAMES.items():
            value = os.environ.get(ENV_PREFIX + old.upper())
            if value is not None:
                found[new] = value
        return found


# Flag spelling of each field, for one-line errors a person recognises.
FLAGS: dict[str, str] = {name: "--" + name.replace("_", "-") for name in SiteInputs.model_fields}
FLAGS.update({new: "--" + old.replace("_", "-") for old, new in OLD_NAMES.items()})  # --primary-color stays
FLAGS["tls"] = "--tls"
FLAGS["monitoring"] = "--with-monitoring"

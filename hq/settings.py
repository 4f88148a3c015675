"""HQ's runtime settings, from `KIT_HQ_*` environment variables or arguments."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class HQSettings(BaseSettings):
    """Everything HQ needs to run; state lives in `dir` unless a database URL says otherwise."""

    model_config = SettingsConfigDict(env_prefix="KIT_HQ_", extra="ignore")

    dir: Path = Field(default_factory=lambda: Path("hq-data"))
    database_url: str | None = None
    bind: str = "0.0.0.0:8600"
    workers: int = Field(default=1, ge=1, le=64)
    migrate: bool = True  # run migrations at start (workers after the first skip it)
    public_url: str = Field(default="http://127.0.0.1:8600", pattern=r"^https?://[^\s]+$")
    # Where payers' browsers reach HQ (the page a gateway sends them back to), when not at public_url: the demo,
    # whose HQ the gateway and the sites reach by container name and a browser by a loopback port.
    payer_url: str | None = Field(default=None, pattern=r"^https?://[^\s]+$")
    registry_url: str | None = "127.0.0.1:5000"
    heartbeat_interval_seconds: int = Field(default=30, ge=1, le=3600)
    # the push channel (GET /v1/commands/wait): the longest HQ holds a long-poll open (0: answer at once)
    push_wait_max_seconds: int = Field(default=50, ge=0, le=55)
    # An agent asks again the moment its long-poll answers, on the same connection: a busy worker may take
    # longer than uvicorn's 5 s default to read that next request, and must not drop the connection meanwhile.
    keep_alive_seconds: int = Field(default=60, ge=1, le=600)
    listen_backlog: int = Field(default=4096, ge=16, le=65535)  # connections waiting to be accepted (agents reconnecting)
    # timed sanctions (hq.sanctions): how often HQ lifts suspensions whose time ran out
    sanction_check_seconds: float = Field(default=15.0, gt=0)
    rollout_check_seconds: float = Field(default=15.0, gt=0)  # a ring's soak time ends this late at most
    command_ttl_seconds: int = Field(default=3600, ge=60, le=30 * 86400)
    idempotency_retention_days: int = Field(default=7, ge=7, le=365)
    in_flight_timeout_seconds: int = Field(default=120, ge=5, le=3600)
    order_groups: bool = True  # concurrent order requests decided together (hq.order_groups)
    # false: every request through FastAPI's routes, none ahead of them (hq.fast_paths); for comparing
    # (bench/hq_single_bench.py) and for ruling the fast paths out when something looks wrong
    fast_paths: bool = True
    # A new PostgreSQL connection (name, TCP, backend start) is made within this or fails: an unreachable
    # database fails requests quickly. Raise it for a database far away or a host that is often loaded.
    db_connect_seconds: float = Field(default=1.0, ge=0.2, le=60)
    tombstone_retention_days: int = Field(default=30, ge=1, le=3650)
    site_rate_per_second: float = Field(default=50.0, gt=0)
    site_rate_burst: int = Field(default=200, ge=1)
    session_hours: int = Field(default=12, ge=1, le=168)
    # the fleet page's language unless the operator picks one (`?lang=`, remembered in a cookie)
    locale: Literal["en", "zh-CN"] = "en"
    housekeeping_seconds: int = Field(default=600, ge=1)
    # charge each licensed site the year's base fee by itself (housekeeping; once per site and year)
    auto_base_fee: bool = False
    api_docs: bool = True  # /docs, /redoc and /openapi.json; KIT_HQ_API_DOCS=false turns them off
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)  # any request body, checked before auth
    # Monitoring: /metrics needs this bearer token (a file; made at first start, mode 0600, when unset).
    metrics_token_file: Path | None = None
    # Fleet alerts (hq.fleet_alerts): when a site counts as silent, stale, backed up; how often HQ looks.
    silent_heartbeats: int = Field(default=3, ge=1, le=1000)
    sync_stale_seconds: int = Field(default=3600, ge=60)
    outbox_backlog_alert: int = Field(default=1000, ge=1)
    alert_check_seconds: float = Field(default=30.0, gt=0)
    # Where alerts go: a webhook (JSON POST) and/or mail through an SMTP relay.
    alert_webhook_url: str | None = Field(default=None, pattern=r"^https?://[^\s]+$")
    alert_email_to: str | None = None  # comma-separated addresses
    alert_email_from: str = "kitctl-hq@localhost"
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    # Applications (hq.applications): contacts that cannot apply (addresses or @domains, comma-separated);
    # how long before a material expires its applicant is reminded; how often HQ looks.
    application_blocked: str | None = None
    application_remind_days: int = Field(default=30, ge=1, le=365)
    application_check_seconds: float = Field(default=3600.0, gt=0)
    # The public application endpoints (hq.apply_limits): submissions per address, at once and refilled per hour.
    apply_burst: int = Field(default=5, ge=1, le=10_000)
    apply_per_hour: float = Field(default=20.0, gt=0, le=1_000_000)
    # Grades (hq.grade_cache): how long a site's computed metrics for a month are reused — this month and the
    # one before (still moving), and older months (a late refund or complaint still reaches them).
    grade_cache_seconds: float = Field(default=300.0, ge=0)
    grade_cache_closed_seconds: float = Field(default=3600.0, ge=0)

    # Payments (hq.payments): how long a buyer has to pay, how often HQ expires unpaid orders / asks the gateway.
    payment_expiry_seconds: int = Field(default=900, ge=10, le=86400)
    payment_check_seconds: float = Field(default=5.0, gt=0)
    # How often HQ looks for a day to reconcile against the gateways' books (hq.payments.reconcile.due).
    payment_reconcile_seconds: float = Field(default=3600.0, gt=0)

    @field_validator("dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @property
    def effective_database_url(self) -> str:
        """The configured URL, or SQLite inside the HQ directory."""
        return self.database_url or f"sqlite:///{self.dir / 'hq.sqlite3'}"

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.bind.rpartition(":")
        return host or "0.0.0.0", int(port)

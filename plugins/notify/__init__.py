"""Notify: a signed webhook and/or an e-mail on order events. Card keys are never sent.

Payloads are redacted twice: by the host before any plugin sees an event, and
here again before anything leaves the machine, so a caller mistake cannot leak
a delivered card key.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from plugins.checks import redact
from plugins.contract import Manifest, Plugin

Event = Literal["order_created", "order_decided"]


class NotifySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[Event] = ["order_created", "order_decided"]
    webhook_url: str | None = Field(default=None, pattern=r"^https?://[^\s]+$", max_length=500)
    webhook_secret: SecretStr | None = None
    retries: int = Field(default=3, ge=0, le=5)
    backoff_seconds: float = Field(default=0.5, ge=0, le=5)
    timeout_seconds: float = Field(default=5.0, gt=0, le=10)
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    mail_from: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")
    mail_to: list[str] = []

    @field_validator("events", "mail_to", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _complete(self) -> "NotifySettings":
        if self.webhook_url and not self.webhook_secret:
            raise ValueError("webhook_url needs webhook_secret (the HMAC key receivers verify with)")
        if self.smtp_host and not (self.mail_from and self.mail_to):
            raise ValueError("smtp_host needs mail_from and mail_to")
        return self


class NotifyPlugin(Plugin):
    manifest = Manifest(
        name="notify",
        version="1.0.0",
        feature="notify",
        kit_versions=">=0.1,<2",
        settings=NotifySettings,
        description="Signed webhook and e-mail on order events (never card keys).",
        event_timeout_seconds=60.0,
    )

    def order_created(self, payload: dict[str, Any]) -> None:
        self._deliver("order_created", payload)

    def on_order_decided(self, payload: dict[str, Any]) -> None:
        self._deliver("order_decided", payload)

    def _deliver(self, event: str, payload: dict[str, Any]) -> None:
        """Webhook and mail independently; raise at the end if either failed (the host counts it)."""
        if event not in self.settings.events:
            return
        data = redact(payload)
        failures = []
        for channel, send in (("webhook", self._webhook), ("mail", self._mail)):
            try:
                send(event, data)
            except Exception as exc:  # noqa: BLE001 - one channel failing must not stop the other
                failures.append(f"{channel}: {type(exc).__name__}: {exc}")
        if failures:
            raise RuntimeError("; ".join(failures))

    def _webhook(self, event: str, data: dict[str, Any]) -> None:
        from plugins.notify.webhook import WebhookTarget, post_event

        s = self.settings
        if not s.webhook_url or s.webhook_secret is None:
            return
        target = WebhookTarget(s.webhook_url, s.webhook_secret.get_secret_value(), s.retries, s.backoff_seconds, s.timeout_seconds)
        post_event(target, event, data)

    def _mail(self, event: str, data: dict[str, Any]) -> None:
        from plugins.notify.mail import MailTarget, send

        s = self.settings
        if not s.smtp_host or not s.mail_from:
            return
        password = s.smtp_password.get_secret_value() if s.smtp_password else None
        target = MailTarget(s.smtp_host, s.smtp_port, s.smtp_user, password, s.smtp_starttls, s.mail_from, tuple(s.mail_to), s.timeout_seconds)
        send(target, event, data)

"""E-mail about order events through the site's SMTP server (smtplib)."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any


@dataclass(frozen=True)
class MailTarget:
    host: str
    port: int
    user: str | None
    password: str | None
    starttls: bool
    sender: str
    recipients: tuple[str, ...]
    timeout_seconds: float


SUBJECTS = {"order_created": "New order {order_id}", "order_decided": "Order {order_id}: {status}"}
LINES = ("order_id", "status", "sku", "item_name", "quantity", "total_cents", "currency", "decision")


def compose(target: MailTarget, event: str, data: dict[str, Any]) -> EmailMessage:
    """A plain-text message built only from the (already redacted) event data."""
    message = EmailMessage()
    fields = {k: data.get(k, "") for k in ("order_id", "status")}
    message["Subject"] = SUBJECTS.get(event, event).format(**fields)
    message["From"] = target.sender
    message["To"] = ", ".join(target.recipients)
    body = [f"{key}: {data[key]}" for key in LINES if data.get(key) not in (None, "")]
    message.set_content("\n".join([f"event: {event}", *body]) + "\n")
    return message


def send(target: MailTarget, event: str, data: dict[str, Any]) -> None:
    import smtplib

    with smtplib.SMTP(target.host, target.port, timeout=target.timeout_seconds) as smtp:
        if target.starttls:
            smtp.starttls()
        if target.user:
            smtp.login(target.user, target.password or "")
        smtp.send_message(compose(target, event, data))

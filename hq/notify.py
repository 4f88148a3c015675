"""Telling operators about fleet alerts: a JSON webhook and mail through an SMTP relay (`mail`, also HQ's
other outgoing mail, e.g. hq.restock).

Both are optional (`KIT_HQ_ALERT_WEBHOOK_URL`, `KIT_HQ_ALERT_EMAIL_TO` with
`KIT_HQ_SMTP_HOST`); each send is bounded by a 10 s timeout. `send` says whether every
configured channel took the message, so the caller retries the rest next round.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from hq.settings import HQSettings

log = logging.getLogger("hq.notify")
TIMEOUT_SECONDS = 10.0
LABELS = {"silent": "site silent", "db_unhealthy": "database unhealthy", "sync_stale": "catalog sync stale",
          "outbox_backlog": "outbox backlog", "low_stock": "low stock", "sold_out": "sold out"}


def subject(alert: dict[str, Any]) -> str:
    state = "FIRING" if alert["state"] == "firing" else "RESOLVED"
    return f"[kitctl HQ] {state} {alert['site']}: {LABELS.get(alert['kind'], alert['kind'])}"


def send(settings: "HQSettings", alert: dict[str, Any]) -> bool:
    ok = True
    if settings.alert_webhook_url:
        ok = _webhook(settings.alert_webhook_url, alert) and ok
    if settings.alert_email_to and settings.smtp_host:
        ok = _mail(settings, alert) and ok
    return ok


def deliver(settings: "HQSettings", alerts: list[dict[str, Any]], release: Callable[[dict[str, Any]], None]) -> int:
    """Send each claimed alert; one a channel did not take is released for the next round. Returns how many went."""
    sent = 0
    for alert in alerts:
        if send(settings, alert):
            sent += 1
        else:
            release(alert)
    return sent


def _webhook(url: str, alert: dict[str, Any]) -> bool:
    import httpx

    body = {"source": "kitctl-hq", "title": subject(alert), **alert}
    try:
        response = httpx.post(url, json=body, timeout=TIMEOUT_SECONDS)
    except httpx.HTTPError as exc:
        log.warning("alert webhook failed: %s", type(exc).__name__)
        return False
    if response.status_code >= 300:
        log.warning("alert webhook answered %s", response.status_code)
        return False
    return True


def _mail(settings: "HQSettings", alert: dict[str, Any]) -> bool:
    return mail(settings, settings.alert_email_to or "", subject(alert),
                f"{subject(alert)}\n\n{alert['summary']}\n\nsite: {alert['site']}\nkind: {alert['kind']}\n"
                f"severity: {alert['severity']}\nopened: {alert['opened_at']}\n"
                f"resolved: {alert['resolved_at'] or '-'}\n\nThe fleet page lists open alerts and their history.\n")


def mail(settings: "HQSettings", to: str, title: str, body: str, headers: dict[str, str] | None = None) -> bool:
    """One plain-text mail through HQ's SMTP relay; False (logged) when it did not take it."""
    import smtplib
    from email.message import EmailMessage

    message = EmailMessage()
    message["Subject"] = title
    message["From"] = settings.alert_email_from
    message["To"] = to
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    try:
        with smtplib.SMTP(settings.smtp_host or "", settings.smtp_port, timeout=TIMEOUT_SECONDS) as smtp:
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        log.warning("mail failed: %s", type(exc).__name__)
        return False
    return True

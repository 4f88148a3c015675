"""The mail applicants get: at each change of their application, before a material expires, and on approval
the install steps with the one `kitctl up` command carrying the licence token.

Sent through HQ's SMTP relay (hq.notify.mail) after the change committed; without a relay nothing is
sent (the progress page shows the same). A failed stage mail is logged, not retried: the page stays
the place of record. Text in English and Chinese, the applicant's language first.
"""

from __future__ import annotations

import shlex
from datetime import date
from typing import TYPE_CHECKING

from hq import i18n
from hq.application_stages import EXPECTED_DAYS, number_of
from hq.models import Application

if TYPE_CHECKING:
    from hq.service import HQ


def install_command(hq: "HQ", token: str, name: str, domain: str | None) -> str:
    """The one command that launches the site (after the pinned keys are fetched, step 1 of the mail)."""
    parts = ["kitctl", "up", "--licence", token, "--hq-keys", "hq-keys.json", "--name", name]
    if domain:
        parts += ["--domain", domain]
    return " ".join(shlex.quote(p) for p in parts)


def _status_link(hq: "HQ", number: str) -> str:
    return f"{hq.settings.public_url.rstrip('/')}/apply/status?n={number}"


def _recipient(hq: "HQ", app_id: int) -> tuple[str, Application] | None:
    with hq.session() as session:
        row = session.get(Application, app_id)
        if row is None:
            return None
        session.expunge(row)
        return hq.vault.decrypt(row.contact_enc, context=f"application:{app_id}"), row


def _both(locale: str, key: str, **values: object) -> str:
    """The text in the applicant's language, then the other one."""
    order = [locale] + [code for code in i18n.LOCALES if code != locale]
    return "\n".join(i18n.t(code)(key, **values) for code in order)


def stage_changed(hq: "HQ", app_id: int, install: str | None = None) -> bool:
    if not hq.settings.smtp_host:
        return False
    found = _recipient(hq, app_id)
    if found is None:
        return False
    to, row = found
    number = number_of(app_id)
    lines = [_both(row.locale, "mail.stage", number=number, stage=i18n.t(row.locale)(f"stage.{row.stage}"))]
    if row.reasons:
        lines.append(_both(row.locale, "mail.reasons") + "\n" + "\n".join(f"  - {r}" for r in row.reasons))
        lines.append(_both(row.locale, "mail.resubmit"))
    if row.stage in EXPECTED_DAYS and row.stage != "licence_issued":
        lines.append(_both(row.locale, "mail.expected", days=EXPECTED_DAYS[row.stage]))
    if install:
        keys = f"curl -fsS -o hq-keys.json {hq.settings.public_url.rstrip('/')}/v1/keys"
        lines.append(_both(row.locale, "mail.install") + f"\n\n  1. {keys}\n  2. {install}\n")
    lines.append(_both(row.locale, "mail.follow") + f"\n{_status_link(hq, number)}")
    return _send(hq, to, f"[kitctl HQ] {number}: {i18n.t(row.locale)(f'stage.{row.stage}')}", "\n\n".join(lines))


def remind(hq: "HQ", app_id: int, kind: str, expires_on: date) -> bool:
    found = _recipient(hq, app_id)
    if found is None:
        return False
    to, row = found
    number = number_of(app_id)
    body = _both(row.locale, "mail.expiring", number=number, kind=kind, date=expires_on.isoformat())
    return _send(hq, to, f"[kitctl HQ] {number}: {kind} expires {expires_on.isoformat()}",
                 body + "\n\n" + _both(row.locale, "mail.follow") + f"\n{_status_link(hq, number)}")


def _send(hq: "HQ", to: str, title: str, body: str) -> bool:
    from hq.notify import mail

    return mail(hq.settings, to, title, body + "\n")

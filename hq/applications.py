"""Applications from prospective partners: submitted → initial review → manual review → contract signed →
base fee paid → licence issued (or rejected, with reasons, and resubmitted).

The initial review is HQ's own, at once: every required material present and not expired, no other
open application from the same contact or name, the contact not blocked. The later stages are
operators' decisions (`decide`), each to the next stage only. Every change is a row of
`application_events` (who, when, why) and an audit event, and the applicant is mailed
(hq.application_mail). The applicant follows it with the number and a secret HQ keeps only hashed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hq import application_files as files
from hq import application_mail
from hq import audit
from hq.application_stages import EXPECTED_DAYS, NEXT, NUMBER_PATTERN, REJECTED, STAGES, number_of
from hq.clock import aware, iso, utcnow
from hq.errors import ApiError
from hq.models import Application, ApplicationEvent, ApplicationMaterial, CatalogItem
from kitcore.licence.tiers import TIERS

if TYPE_CHECKING:
    from hq.service import HQ

DECISIONS = (*NEXT.values(), REJECTED)
SECRET_PATTERN = r"^[A-Za-z0-9_-]{20,64}$"
IDENTITY = "identity"
LICENCE_DAYS = 365
_DUMMY = hashlib.sha256(b"no such application").hexdigest()


@dataclass(frozen=True)
class ApplicationIn:
    """What the apply page or `POST /v1/applications` sends (its form checked by the schema)."""

    applicant: str  # company|person
    name: str
    email: str
    categories: list[str]
    regions: list[str]
    tier: str
    domain: str | None = None
    locale: str = "en"
    uploads: list[files.Upload] = field(default_factory=list)


def id_of(number: str) -> int:
    if not re.fullmatch(NUMBER_PATTERN, number):
        raise ApiError(404, "not_found", f"application {number[:20]!r} not found; numbers look like A-000001")
    return int(number[2:])


def sold_categories(session: Session) -> set[str]:
    """The categories of the catalog's active items: what HQ sells, so what a partner can apply for."""
    query = select(CatalogItem.category).where(CatalogItem.deleted.is_(False), CatalogItem.status == "active")
    return set(session.scalars(query.distinct()))


def required(categories: list[str]) -> list[str]:
    """The materials an application needs: an identity document, and one qualification per category."""
    return [IDENTITY, *categories]


def _refuse_request(session: Session, data: ApplicationIn) -> list[files.Checked]:
    """Whatever makes the request itself wrong, before anything is stored (each a one-line refusal)."""
    not_sold = sorted(set(data.categories) - sold_categories(session))
    if not_sold:
        raise ApiError(422, "category_not_sold", f"categories: HQ does not sell {', '.join(not_sold)}")
    allowed = TIERS[data.tier].max_categories
    if len(data.categories) > allowed:
        raise ApiError(422, "too_many_categories", f"categories: tier {data.tier} allows at most {allowed}; "
                       f"{len(data.categories)} asked for")
    return check_uploads(data.uploads, data.categories)


def check_uploads(uploads: list[files.Upload], categories: list[str]) -> list[files.Checked]:
    if len(uploads) > files.MAX_FILES:
        raise ApiError(422, "material_kind", f"materials: at most {files.MAX_FILES} files")
    kinds = [u.kind for u in uploads]
    for kind in kinds:
        if kind not in required(categories):
            raise ApiError(422, "material_kind", f"material {kind[:40]!r}: not asked for; send identity or one "
                           f"of the categories applied for ({', '.join(categories)})")
        if kinds.count(kind) > 1:
            raise ApiError(422, "material_kind", f"material {kind}: sent twice")
    return [files.check(u) for u in uploads]


def submit(hq: "HQ", data: ApplicationIn) -> dict[str, Any]:
    """Store a new application and run the initial review; returns its number and secret (shown once)."""
    secret = secrets.token_urlsafe(24)
    stored: list[str] = []
    try:
        with hq.session() as session:
            checked = _refuse_request(session, data)
            now = utcnow()
            row = Application(secret_sha256=_hash(secret), applicant_kind=data.applicant, name=data.name.strip(),
                              contact_enc="", contact_index=hq.vault.index(data.email, "application-contact"),
                              categories=list(data.categories), regions=list(data.regions), tier=data.tier,
                              domain=data.domain.lower() if data.domain else None, locale=data.locale,
                              stage="submitted", reasons=[], created_at=now, updated_at=now)
            session.add(row)
            session.flush()
            row.contact_enc = hq.vault.encrypt(data.email.strip(), context=f"application:{row.id}")
            stored = _add_materials(hq, session, row, checked)
            _event(session, row, "applicant", None, "submitted", "submitted")
            _initial_review(hq, session, row)
            answer = {"number": number_of(row.id), "secret": secret, "stage": row.stage, "reasons": list(row.reasons)}
    except BaseException:
        files.discard(hq, stored)
        raise
    _tell(hq, answer["number"])
    return answer


def resubmit(hq: "HQ", number: str, secret: str, uploads: list[files.Upload]) -> dict[str, Any]:
    """A rejected application, its materials fixed: new uploads replace those of the same kind; reviewed again."""
    stored: list[str] = []
    try:
        with hq.session() as session:
            row = _own(session, number, secret, lock=True)
            if row.stage != REJECTED:
                raise ApiError(409, "not_rejected", f"application {number} is at {row.stage}; only a rejected "
                               "application is resubmitted")
            checked = check_uploads(uploads, list(row.categories))
            now = utcnow()
            session.execute(update(ApplicationMaterial).where(
                ApplicationMaterial.application_id == row.id, ApplicationMaterial.replaced_at.is_(None),
                ApplicationMaterial.kind.in_([c.upload.kind for c in checked])).values(replaced_at=now))
            stored = _add_materials(hq, session, row, checked)
            replaced = ", ".join(c.upload.kind for c in checked) or "nothing"
            _move(session, row, "applicant", "submitted", f"resubmitted; new materials: {replaced}")
            _initial_review(hq, session, row)
            answer = {"number": number, "stage": row.stage, "reasons": list(row.reasons)}
    except BaseException:
        files.discard(hq, stored)
        raise
    _tell(hq, number)
    return answer


def _add_materials(hq: "HQ", session: Session, row: Application, checked: list[files.Checked]) -> list[str]:
    names = []
    for item in checked:
        names.append(files.store(hq, item.upload.data))
        session.add(ApplicationMaterial(application_id=row.id, kind=item.upload.kind, filename=item.name,
                                        content_type=item.content_type, size=len(item.upload.data),
                                        sha256=item.sha256, stored_as=names[-1], expires_on=item.upload.expires_on,
                                        uploaded_at=utcnow()))
    session.flush()
    return names


def _initial_review(hq: "HQ", session: Session, row: Application) -> None:
    """HQ's automatic checks: submitted → initial_review → manual_review, or rejected with the reasons."""
    _move(session, row, "hq", "initial_review", "automatic checks")
    reasons = initial_findings(hq, session, row)
    if reasons:
        row.reasons = reasons
        _move(session, row, "hq", REJECTED, "; ".join(reasons))
    else:
        row.reasons = []
        _move(session, row, "hq", "manual_review", "automatic checks passed")


def initial_findings(hq: "HQ", session: Session, row: Application) -> list[str]:
    """Why the application cannot go to an operator yet (empty: it can)."""
    today = utcnow().date()
    reasons = [f"missing material: {kind}" for kind in missing(session, row)]
    for m in current_materials(session, row.id):
        if m.expires_on is not None and m.expires_on < today:
            reasons.append(f"material {m.kind} expired on {m.expires_on.isoformat()}")
    open_ = select(Application.id).where(Application.id != row.id, Application.stage != REJECTED,
                                         Application.stage != "licence_issued")
    twin = session.scalar(open_.where((Application.contact_index == row.contact_index)
                                      | (Application.name == row.name)).order_by(Application.id).limit(1))
    if twin is not None:
        reasons.append(f"duplicate: application {number_of(twin)} from the same contact or name is still open")
    if blocked(hq, hq.vault.decrypt(row.contact_enc, context=f"application:{row.id}")):
        reasons.append("this contact cannot apply; write to HQ")
    return reasons


def blocked(hq: "HQ", email: str) -> bool:
    """On HQ's block list (`KIT_HQ_APPLICATION_BLOCKED`: addresses or @domains, comma-separated)."""
    entries = {e.strip().casefold() for e in (hq.settings.application_blocked or "").split(",") if e.strip()}
    address = email.strip().casefold()
    return address in entries or "@" + address.rpartition("@")[2] in entries


def current_materials(session: Session, app_id: int) -> list[ApplicationMaterial]:
    return list(session.scalars(select(ApplicationMaterial).where(
        ApplicationMaterial.application_id == app_id, ApplicationMaterial.replaced_at.is_(None))
        .order_by(ApplicationMaterial.id)))


def missing(session: Session, row: Application) -> list[str]:
    have = {m.kind for m in current_materials(session, row.id)}
    return [kind for kind in required(list(row.categories)) if kind not in have]


def decide(hq: "HQ", operator: str, number: str, to: str, why: str, site: str | None = None,
           days: int = LICENCE_DAYS) -> dict[str, Any]:
    """An operator moves the application to its next stage, or rejects it (with the reason as `why`).

    `licence_issued` issues the licence through hq.licences (site id `site`, else one made from the
    number) and mails the install command; the stage is claimed first, so two operators issue once.
    """
    if to not in DECISIONS:
        raise ApiError(422, "invalid_request", f"to: {to[:30]!r} is not one of {', '.join(DECISIONS)}")
    why = why.strip()
    if not why:
        raise ApiError(422, "invalid_request", "why: say why (the applicant reads a rejection's reason)")
    app_id = id_of(number)
    with hq.session() as session:
        row = _locked(session, app_id)
        if row is None:
            raise ApiError(404, "not_found", f"application {number} not found")
        if to == REJECTED and row.stage not in NEXT:
            raise ApiError(409, "wrong_stage", f"application {number} is at {row.stage}; it cannot be rejected now")
        if to != REJECTED and NEXT.get(row.stage) != to:
            nxt = NEXT.get(row.stage)
            raise ApiError(409, "wrong_stage", f"application {number} is at {row.stage}; "
                           + (f"its next stage is {nxt}" if nxt else "no operator decision is due"))
        if to == REJECTED:
            row.reasons = [why]
        if to == "licence_issued":
            row.site_id = site or f"a{app_id:06d}"
        _move(session, row, operator, to, why)
        audit.record(session, operator, f"application.{to}", row.site_id, number=number, why=why)
        snapshot = {"name": row.name, "tier": row.tier, "categories": list(row.categories),
                    "regions": list(row.regions), "domain": row.domain, "site": row.site_id}
    result: dict[str, Any] = {"number": number, "stage": to}
    if to == "licence_issued":
        result.update(_issue(hq, operator, app_id, snapshot, days))
    _tell(hq, number, install=result.get("install_command"))
    return result


def _issue(hq: "HQ", operator: str, app_id: int, snap: dict[str, Any], days: int) -> dict[str, Any]:
    """The licence for a claimed application; a refusal hands the stage back to base_fee_paid."""
    from hq import licences

    try:
        issued = licences.issue(hq, operator, snap["site"], snap["tier"], snap["categories"], days,
                                regions=snap["regions"], licensee=snap["name"], domain=snap["domain"])
    except Exception as exc:
        with hq.session() as session:
            row = _locked(session, app_id)
            assert row is not None
            detail = getattr(exc, "detail", None) or str(exc)
            _move(session, row, "hq", "base_fee_paid", f"licence not issued: {detail[:300]}")
            row.site_id = None
        raise
    with hq.session() as session:
        row = session.get(Application, app_id)
        assert row is not None
        audit.record(session, operator, "application.licence", snap["site"], number=number_of(app_id), jti=issued["jti"])
    return {"site": snap["site"], "jti": issued["jti"],
            "install_command": application_mail.install_command(hq, issued["token"], snap["name"], snap["domain"])}


def _locked(session: Session, app_id: int) -> Application | None:
    return session.scalar(select(Application).where(Application.id == app_id).with_for_update())


def _move(session: Session, row: Application, actor: str, to: str, why: str) -> None:
    _event(session, row, actor, row.stage, to, why)
    row.stage = to
    row.updated_at = utcnow()


def _event(session: Session, row: Application, actor: str, from_stage: str | None, to: str, why: str) -> None:
    session.add(ApplicationEvent(application_id=row.id, at=utcnow(), actor=actor[:64], from_stage=from_stage,
                                 to_stage=to, why=why[:1000]))
    if actor in ("hq", "applicant"):  # operators' decisions are audited by `decide` with the operator's name
        audit.record(session, actor, f"application.{to}", None, number=number_of(row.id), why=why[:300])


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _own(session: Session, number: str, secret: str, lock: bool = False) -> Application:
    """The application if `secret` is its secret (compared in constant time); one 404 for any mismatch."""
    app_id = int(number[2:]) if re.fullmatch(NUMBER_PATTERN, number) else 0
    query = select(Application).where(Application.id == app_id)
    row = session.scalar(query.with_for_update() if lock else query)
    stored = row.secret_sha256 if row is not None else _DUMMY
    if not hmac.compare_digest(stored, _hash(secret)) or row is None:
        raise ApiError(404, "not_found", "no application with this number and secret")
    return row


def progress(hq: "HQ", number: str, secret: str) -> dict[str, Any]:
    """What the applicant sees: the stage, each stage reached and when, what is missing, the expected time."""
    with hq.session() as session:
        row = _own(session, number, secret)
        events = list(session.scalars(select(ApplicationEvent).where(ApplicationEvent.application_id == row.id)
                                      .order_by(ApplicationEvent.id)))
        materials = current_materials(session, row.id)
        return {
            "number": number, "stage": row.stage, "name": row.name, "tier": row.tier,
            "categories": list(row.categories), "regions": list(row.regions), "reasons": list(row.reasons),
            "missing": missing(session, row), "waiting_for": waiting_for(row.stage),
            "expected_days": EXPECTED_DAYS.get(row.stage), "site": row.site_id,
            "history": [{"at": iso(e.at), "stage": e.to_stage, "why": e.why,
                         "by": e.actor if e.actor in ("hq", "applicant") else
                         "gateway" if e.actor.startswith("gateway:") else "operator"} for e in events],
            "materials": [_material(m) for m in materials],
        }


def waiting_for(stage: str) -> str | None:
    """What the application waits for at `stage` (a key the pages translate)."""
    return {"manual_review": "review", "contract_signed": "base_fee", "base_fee_paid": "licence",
            REJECTED: "applicant", "submitted": "checks", "initial_review": "checks"}.get(stage)


def _material(m: ApplicationMaterial) -> dict[str, Any]:
    return {"id": m.id, "kind": m.kind, "filename": m.filename, "content_type": m.content_type, "size": m.size,
            "sha256": m.sha256, "expires_on": m.expires_on.isoformat() if m.expires_on else None,
            "uploaded_at": iso(m.uploaded_at)}


def listing(hq: "HQ", stage: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """Applications for operators, those waiting for a decision first (then the newest)."""
    if stage is not None and stage not in (*STAGES, REJECTED):
        raise ApiError(422, "invalid_request", f"stage: {stage[:30]!r} is not one of {', '.join((*STAGES, REJECTED))}")
    query = select(Application).order_by(Application.id.desc()).limit(limit)
    if stage:
        query = query.where(Application.stage == stage)
    with hq.session() as session:
        rows = list(session.scalars(query))
    rows.sort(key=lambda r: r.stage not in NEXT)  # stable: the queue first, newest first within each
    return [_summary(r) for r in rows]


def queue(hq: "HQ", limit: int = 50) -> list[dict[str, Any]]:
    """The applications waiting for an operator's decision, oldest first (the fleet page's queue)."""
    with hq.read() as conn:  # plain rows: the fleet page reads this on every load
        rows = conn.execute(select(Application).where(Application.stage.in_(list(NEXT)))
                            .order_by(Application.updated_at, Application.id).limit(limit))
        return [_summary(r) for r in rows]


def _summary(r: Application) -> dict[str, Any]:
    return {"number": number_of(r.id), "name": r.name, "applicant": r.applicant_kind, "tier": r.tier,
            "categories": list(r.categories), "regions": list(r.regions), "stage": r.stage,
            "next": NEXT.get(r.stage), "reasons": list(r.reasons), "site": r.site_id,
            "created_at": iso(r.created_at), "updated_at": iso(r.updated_at)}


def show(hq: "HQ", number: str) -> dict[str, Any]:
    """One application for an operator: the contact, materials and every stage change with who and why."""
    app_id = id_of(number)
    with hq.session() as session:
        row = session.get(Application, app_id)
        if row is None:
            raise ApiError(404, "not_found", f"application {number} not found")
        events = session.scalars(select(ApplicationEvent).where(ApplicationEvent.application_id == app_id)
                                 .order_by(ApplicationEvent.id))
        return {**_summary(row), "email": hq.vault.decrypt(row.contact_enc, context=f"application:{row.id}"),
                "domain": row.domain, "missing": missing(session, row),
                "materials": [_material(m) for m in current_materials(session, app_id)],
                "history": [{"at": iso(e.at), "by": e.actor, "from": e.from_stage, "to": e.to_stage, "why": e.why}
                            for e in events]}


def material(hq: "HQ", number: str, material_id: int) -> tuple[str, str, bytes]:
    """(filename, content type, bytes) of one of the application's materials, for an operator."""
    app_id = id_of(number)
    with hq.session() as session:
        m = session.scalar(select(ApplicationMaterial).where(ApplicationMaterial.id == material_id,
                                                             ApplicationMaterial.application_id == app_id))
        if m is None:
            raise ApiError(404, "not_found", f"application {number} has no material {material_id}")
        return m.filename, m.content_type, files.load(hq, m.stored_as)


def remind_expiring(hq: "HQ", now: datetime | None = None) -> int:
    """Mail each applicant whose material expires within `application_remind_days`, once per material.

    A material is claimed (`reminded_at`) before its mail and released if the mail did not go.
    Without an SMTP relay nothing is claimed. Returns how many reminders went out.
    """
    if not hq.settings.smtp_host:
        return 0
    moment = aware(now) if now else utcnow()
    today: date = moment.date()
    horizon = today + timedelta(days=hq.settings.application_remind_days)
    m, a = ApplicationMaterial, Application
    with hq.session() as session:
        due = list(session.execute(select(m.id, m.kind, m.expires_on, a.id).join(a, a.id == m.application_id).where(
            m.replaced_at.is_(None), m.reminded_at.is_(None), m.expires_on.is_not(None), m.expires_on >= today,
            m.expires_on <= horizon, a.stage != REJECTED).order_by(m.id).limit(200)))
    sent = 0
    for material_id, kind, expires_on, app_id in due:
        with hq.session() as session:
            if not session.execute(update(m).where(m.id == material_id, m.reminded_at.is_(None))
                                   .values(reminded_at=moment)).rowcount:
                continue
        if application_mail.remind(hq, app_id, kind, expires_on):
            sent += 1
        else:
            with hq.session() as session:
                session.execute(update(m).where(m.id == material_id).values(reminded_at=None))
    return sent


def _tell(hq: "HQ", number: str, install: str | None = None) -> None:
    application_mail.stage_changed(hq, id_of(number), install)

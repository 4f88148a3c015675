"""Partner applications over the API on a real HQ server: each stage, each automatic check, each refusal
(nothing stored), forged secrets, operators' decisions (audited) through to the licence and its mail."""

from __future__ import annotations

import re
from urllib.parse import quote
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from hq import applications
from hq.models import Application, ApplicationEvent, ApplicationMaterial, AuditEvent
from hq.testing import RunningHQ, running_hq
from tests.hq.application_support import JPEG, PDF, PNG, application, material
from tests.hq.helpers import http
from tests.monitoring.receivers import Mailbox, smtp_server


@pytest.fixture
def mailed(tmp_path, db_url):
    """A served HQ (SQLite, and PostgreSQL) mailing through a real SMTP server; it sells games and gifts."""
    with smtp_server() as (box, port):
        with running_hq(tmp_path, database_url=db_url, smtp_host="127.0.0.1", smtp_port=port, application_blocked="@spam.example,bad@x.cn",
                        registry_url=None) as hq:
            hq.seed_item("game-100", category="game")
            hq.seed_item("gift-50", category="gift")
            yield hq, box


def submit(hq: RunningHQ, body: dict[str, Any]) -> Any:
    return http.post(f"{hq.url}/v1/applications", json=body)


def progress(hq: RunningHQ, number: str, secret: str) -> Any:
    return http.get(f"{hq.url}/v1/applications/{number}", headers={"X-Application-Secret": secret})


def decide(hq: RunningHQ, number: str, to: str, why: str = "ok", **extra: Any) -> Any:
    return http.post(f"{hq.url}/v1/admin/applications/{number}/decide", headers=hq.admin_headers(),
                     json={"to": to, "why": why, **extra})


def counts(hq: RunningHQ) -> tuple[int, int, int, int]:
    with hq.service.session() as s:
        stored = hq.service.settings.dir / "application-materials"
        return (s.scalar(select(func.count()).select_from(Application)) or 0,
                s.scalar(select(func.count()).select_from(ApplicationMaterial)) or 0,
                s.scalar(select(func.count()).select_from(ApplicationEvent)) or 0,
                len(list(stored.iterdir())) if stored.exists() else 0)


def test_a_complete_application_passes_the_initial_review_and_waits_for_an_operator(mailed) -> None:
    hq, box = mailed
    r = submit(hq, application(categories=("game", "gift")))
    assert r.status_code == 201, r.text
    done = r.json()
    assert re.fullmatch(r"A-\d{6}", done["number"]) and done["stage"] == "manual_review" and done["reasons"] == []
    seen = progress(hq, done["number"], done["secret"]).json()
    assert [h["stage"] for h in seen["history"]] == ["submitted", "initial_review", "manual_review"]
    assert [h["by"] for h in seen["history"]] == ["applicant", "hq", "hq"]
    assert seen["missing"] == [] and seen["waiting_for"] == "review" and seen["expected_days"] == 3
    assert {m["kind"] for m in seen["materials"]} == {"identity", "game", "gift"}
    with hq.service.session() as s:  # neither the secret nor the address is stored as written
        row = s.get(Application, int(done["number"][2:]))
        assert row.secret_sha256 != done["secret"] and done["secret"] not in row.secret_sha256
        assert "boss@xingchen.cn" not in row.contact_enc
    for path in (hq.service.settings.dir / "application-materials").iterdir():  # random names, mode 0600
        assert re.fullmatch(r"[0-9a-f]{32}", path.name) and path.stat().st_mode & 0o777 == 0o600
    assert (hq.service.settings.dir / "application-materials").stat().st_mode & 0o777 == 0o700
    [mail] = box.messages
    assert mail["To"] == "boss@xingchen.cn" and done["number"] in mail["Subject"] and "Manual review" in mail["Subject"]
    assert done["secret"] not in mail.get_content()  # the secret is shown once, never mailed


def test_a_missing_material_is_rejected_with_the_reason_and_a_resubmission_fixes_it(mailed) -> None:
    hq, box = mailed
    done = submit(hq, application(categories=("game", "gift"), materials=[material("identity"),
                                                                          material("game", JPEG)])).json()
    assert done["stage"] == "rejected" and done["reasons"] == ["missing material: gift"]
    seen = progress(hq, done["number"], done["secret"]).json()
    assert seen["missing"] == ["gift"] and seen["waiting_for"] == "applicant"
    assert "missing material: gift" in box.messages[-1].get_content()
    again = http.post(f"{hq.url}/v1/applications/{done['number']}/resubmit",
                      json={"secret": done["secret"], "materials": [material("gift")]})
    assert again.status_code == 200 and again.json() == {"number": done["number"], "stage": "manual_review",
                                                         "reasons": []}
    history = [h["stage"] for h in progress(hq, done["number"], done["secret"]).json()["history"]]
    assert history == ["submitted", "initial_review", "rejected", "submitted", "initial_review", "manual_review"]
    twice = http.post(f"{hq.url}/v1/applications/{done['number']}/resubmit",
                      json={"secret": done["secret"], "materials": [material("gift")]})
    assert twice.status_code == 409 and twice.json()["error"] == "not_rejected"


def test_duplicates_blocked_contacts_and_expired_materials_fail_the_initial_review(mailed) -> None:
    hq, _ = mailed
    first = submit(hq, application()).json()
    assert first["stage"] == "manual_review"
    dup = submit(hq, application(name="Another Name Ltd")).json()
    assert dup["stage"] == "rejected" and dup["reasons"] == [
        f"duplicate: application {first['number']} from the same contact or name is still open"]
    same_name = submit(hq, application(email="other@xingchen.cn")).json()
    assert "duplicate" in same_name["reasons"][0]
    for email in ("x@spam.example", "BAD@x.cn"):
        blocked = submit(hq, application(email=email, name=f"N {email}")).json()
        assert blocked["reasons"] == ["this contact cannot apply; write to HQ"], email
    old = (date.today() - timedelta(days=1)).isoformat()
    expired = submit(hq, application(email="e@e.cn", name="E", materials=[
        material("identity", expires_on=old), material("game")])).json()
    assert expired["reasons"] == [f"material identity expired on {old}"]


@pytest.mark.parametrize("body, status, code, words", [
    (application(materials=[material("identity", b"\x00" * (5 * 1024 * 1024 + 1), "big.pdf")]), 413,
     "material_too_large", "at most 5,242,880"),
    (application(materials=[material("identity", b"MZ\x90\x00 not a document", "licence.pdf")]), 422,
     "material_type", "not a PDF, PNG or JPEG"),
    (application(materials=[material("identity", b"<html><script>alert(1)</script>", "licence.png")]), 422,
     "material_type", "not a PDF, PNG or JPEG"),
    (application(materials=[material("identity", PNG, "licence.pdf")]), 422, "material_type", "must end in .png"),
    (application(materials=[material("identity"), material("phone")]), 422, "material_kind", "not asked for"),
    (application(materials=[material("identity"), material("identity")]), 422, "material_kind", "sent twice"),
    (application(categories=("phone",)), 422, "category_not_sold", "HQ does not sell phone"),
    (application(categories=("weapons",)), 422, "invalid_request", "categories.0"),
    (application(categories=("game", "gift", "game")), 422, "invalid_request", "same value twice"),
    (application(tier="basic", categories=("game", "gift"), materials=[]), 422, "invalid_request", ""),
    (application(email="not-an-address"), 422, "invalid_request", "email"),
])
def test_bad_input_is_one_line_and_stores_nothing(mailed, body, status, code, words) -> None:
    hq, box = mailed
    if body["tier"] == "basic":  # two categories are allowed for basic: make it three
        hq.seed_item("soft-1", category="software")
        body = {**body, "categories": ["game", "gift", "software"]}
        status, code, words = 422, "too_many_categories", "tier basic allows at most 2"
    r = submit(hq, body)
    assert (r.status_code, r.json()["error"]) == (status, code), r.text
    assert words in r.json()["detail"] and "\n" not in r.json()["detail"]
    assert counts(hq) == (0, 0, 0, 0) and box.messages == []


def test_forged_or_unknown_secrets_see_nothing_and_change_nothing(mailed) -> None:
    hq, _ = mailed
    done = submit(hq, application(materials=[material("identity")])).json()
    assert done["stage"] == "rejected"
    before = counts(hq)
    forged = done["secret"][:-2] + ("AA" if not done["secret"].endswith("AA") else "BB")
    answers = [progress(hq, done["number"], forged), progress(hq, "A-999999", done["secret"]),
               http.post(f"{hq.url}/v1/applications/{done['number']}/resubmit",
                         json={"secret": forged, "materials": [material("game")]})]
    assert {(a.status_code, a.json()["detail"]) for a in answers} == {(404, "no application with this number and secret")}
    assert progress(hq, done["number"], "short").status_code == 422
    assert counts(hq) == before
    assert progress(hq, done["number"], done["secret"]).json()["stage"] == "rejected"


def test_operators_move_it_through_each_stage_audited_and_the_licence_is_mailed(mailed) -> None:
    hq, box = mailed
    done = submit(hq, application()).json()
    number = done["number"]
    assert decide(hq, number, "base_fee_paid").json()["error"] == "wrong_stage"
    assert decide(hq, number, "rejected", why="").status_code == 422
    rejected = decide(hq, number, "rejected", why="the business licence scan is unreadable")
    assert rejected.status_code == 200 and rejected.json()["stage"] == "rejected"
    seen = progress(hq, number, done["secret"]).json()
    assert seen["reasons"] == ["the business licence scan is unreadable"] and seen["history"][-1]["by"] == "operator"
    assert "the business licence scan is unreadable" in box.messages[-1].get_content()
    http.post(f"{hq.url}/v1/applications/{number}/resubmit",
              json={"secret": done["secret"], "materials": [material("identity", JPEG, "licence.jpeg")]})
    for to in ("contract_signed", "base_fee_paid"):
        r = decide(hq, number, to, why=f"{to} on paper")
        assert r.status_code == 200 and r.json() == {"number": number, "stage": to}
    issued = decide(hq, number, "licence_issued", why="approved", site="xingchen-shop")
    assert issued.status_code == 200, issued.text
    assert issued.json()["site"] == "xingchen-shop" and issued.json()["install_command"].startswith("kitctl up --licence ")
    assert decide(hq, number, "rejected", why="too late").json()["error"] == "wrong_stage"
    sites = http.get(f"{hq.url}/v1/admin/licences", headers=hq.admin_headers()).json()
    [site] = [s for s in sites if s["site"] == "xingchen-shop"]
    assert site["tier"] == "pro" and site["categories"] == ["game"] and site["issued_by"] == "tester"
    mail = box.messages[-1].get_content()
    assert "Licence issued" in box.messages[-1]["Subject"] and issued.json()["install_command"] in mail
    assert f"{hq.url}/v1/keys" in mail
    shown = http.get(f"{hq.url}/v1/admin/applications/{number}", headers=hq.admin_headers()).json()
    assert shown["email"] == "boss@xingchen.cn" and shown["site"] == "xingchen-shop"
    assert [(e["by"], e["to"]) for e in shown["history"]][-4:] == [
        ("hq", "manual_review"), ("tester", "contract_signed"), ("tester", "base_fee_paid"), ("tester", "licence_issued")]
    with hq.service.session() as s:
        actions = [(e.operator, e.action) for e in s.scalars(select(AuditEvent).order_by(AuditEvent.id))
                   if e.action.startswith("application.")]
    assert ("tester", "application.rejected") in actions and ("tester", "application.licence_issued") in actions
    assert ("tester", "application.licence") in actions and ("hq", "application.manual_review") in actions
    assert len(box.messages) == 6  # submitted, rejected, resubmitted, contract, fee, licence: one mail each change


def test_a_taken_site_id_hands_the_stage_back(mailed) -> None:
    hq, _ = mailed
    hq.issue_licence("taken")
    done = submit(hq, application()).json()
    for to in ("contract_signed", "base_fee_paid"):
        decide(hq, done["number"], to)
    r = decide(hq, done["number"], "licence_issued", site="taken")
    assert r.status_code == 409 and r.json()["error"] == "licence_exists"
    assert progress(hq, done["number"], done["secret"]).json()["stage"] == "base_fee_paid"
    assert decide(hq, done["number"], "licence_issued").json()["site"] == f"a{int(done['number'][2:]):06d}"


def test_materials_download_to_operators_only_as_attachments(mailed) -> None:
    hq, _ = mailed
    number = submit(hq, application(materials=[material("identity", PDF, "营业执照 \"x\".pdf"),
                                               material("game", PNG)])).json()["number"]
    listed = http.get(f"{hq.url}/v1/admin/applications", headers=hq.admin_headers()).json()
    assert [a["number"] for a in listed] == [number] and listed[0]["next"] == "contract_signed"
    mats = http.get(f"{hq.url}/v1/admin/applications/{number}", headers=hq.admin_headers()).json()["materials"]
    url = f"{hq.url}/v1/admin/applications/{number}/materials/{mats[0]['id']}"
    assert http.get(url).status_code == 401
    r = http.get(url, headers=hq.admin_headers())
    assert r.status_code == 200 and r.content == PDF and r.headers["content-type"] == "application/pdf"
    assert r.headers["x-content-type-options"] == "nosniff" and "sandbox" in r.headers["content-security-policy"]
    assert r.headers["content-disposition"] == ("attachment; filename=\"_____x.pdf\"; filename*=UTF-8''"
                                                + quote("营业执照 x.pdf"))  # the applicant's quotes are dropped
    assert http.get(f"{hq.url}/v1/admin/applications/{number}/materials/999", headers=hq.admin_headers()).status_code == 404
    assert http.get(f"{hq.url}/v1/admin/applications?stage=nope", headers=hq.admin_headers()).status_code == 422


def test_materials_about_to_expire_are_reminded_once(mailed) -> None:
    hq, box = mailed
    soon = date.today() + timedelta(days=10)
    done = submit(hq, application(materials=[material("identity", expires_on=soon.isoformat()),
                                             material("game", expires_on=(soon + timedelta(days=300)).isoformat())]))
    assert done.json()["stage"] == "manual_review"
    before = len(box.messages)
    from datetime import datetime, timezone

    early = datetime.combine(soon - timedelta(days=40), datetime.min.time(), timezone.utc)
    assert applications.remind_expiring(hq.service, early) == 0  # more than 30 days ahead: not yet
    assert applications.remind_expiring(hq.service) == 1
    assert applications.remind_expiring(hq.service) == 0  # once per material
    mail = box.messages[before]
    assert f"identity expires {soon.isoformat()}" in mail["Subject"] and len(box.messages) == before + 1

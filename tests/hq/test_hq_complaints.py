"""Complaints at HQ on SQLite and PostgreSQL: a site passes them on (its own only, idempotent, one per order,
bad input refused and nothing stored), operators list and resolve them (API and CLI), grading counts them."""

from __future__ import annotations

import json
import uuid

import httpx
from sqlalchemy import func, select

from hq import complaints, grades
from hq.models import Complaint
from kitctl.cli import run
from tests.hq.helpers import auth, open_hq

FILED = "2026-10-10T08:00:00+00:00"


def _body(order_id: str = "261010ABC", text: str = "the key did not work", cid: str | None = None) -> dict:
    return {"complaint_id": cid or str(uuid.uuid4()), "order_id": order_id, "text": text, "filed_at": FILED}


def _count(hq) -> int:  # type: ignore[no-untyped-def]
    with hq.service.session() as s:
        return int(s.scalar(select(func.count()).select_from(Complaint)))


def test_a_site_passes_on_a_complaint_once_and_operators_resolve_it(hq_server) -> None:  # type: ignore[no-untyped-def]
    token, other = hq_server.issue_licence("shop-a"), hq_server.issue_licence("shop-b")
    post = lambda body, t=token: httpx.post(f"{hq_server.url}/v1/complaints", json=body, headers=auth(t))  # noqa: E731
    body = _body()
    first = post(body)
    assert first.status_code == 200 and first.json()["status"] == "open" and first.json()["site"] == "shop-a"
    assert post(body).json()["id"] == first.json()["id"] and _count(hq_server) == 1  # a resend: the same complaint
    refusals = [(post(_body()), 409, "duplicate_complaint"),  # another about the same order
                (post({**body, "text": "other words"}), 409, "idempotency_conflict"),
                (post(_body("261010XYZ", "   ")), 422, None), (post(_body("261010XYZ", "x" * 2001)), 422, None),
                (post({**_body("261010XYZ"), "contact": "a@b.cn"}), 422, None),
                (post(_body("261010XYZ"), "forged"), 401, None)]
    for answer, status, code in refusals:
        assert answer.status_code == status, answer.text
        assert "\n" not in answer.json()["detail"] and (code is None or answer.json()["error"] == code)
    assert _count(hq_server) == 1
    assert post(_body(), other).status_code == 200  # the same order id at another site is its own complaint
    hq_server.revoke("shop-b")
    assert post(_body("261010XYZ"), other).status_code == 403 and _count(hq_server) == 2

    h = hq_server.admin_headers()
    listed = httpx.get(f"{hq_server.url}/v1/admin/complaints", params={"site": "shop-a"}, headers=h).json()
    assert [(c["order_id"], c["status"]) for c in listed] == [("261010ABC", "open")]
    assert httpx.get(f"{hq_server.url}/v1/admin/complaints", params={"status": "closed"}, headers=h).status_code == 422
    resolve = lambda cid, text: httpx.post(f"{hq_server.url}/v1/admin/complaints/{cid}/resolve",  # noqa: E731
                                           json={"resolution": text}, headers=h)
    assert resolve(listed[0]["id"], "  ").status_code == 422
    assert resolve(99999, "done").status_code == 404
    done = resolve(listed[0]["id"], "replaced the key")
    assert done.status_code == 200 and done.json()["resolved_by"] and done.json()["resolution"] == "replaced the key"
    assert resolve(listed[0]["id"], "again").json()["error"] == "already_resolved"
    assert httpx.get(f"{hq_server.url}/v1/admin/complaints", headers=auth(token)).status_code == 401


def test_the_count_per_month_enters_the_grade(hq_server) -> None:  # type: ignore[no-untyped-def]
    hq_server.issue_licence("calm")
    hq_server.issue_licence("noisy")
    for n in range(4):
        complaints.record(hq_server.service, "noisy", str(uuid.uuid4()), f"ORDER{n}", "late", grades.utcnow())
    rows = {r["site"]: r for r in grades.ranking(hq_server.service)}
    assert rows["noisy"]["metrics"]["complaints"] == 4 and rows["calm"]["metrics"]["complaints"] == 0
    assert rows["noisy"]["score"] < rows["calm"]["score"]  # the same otherwise: the complaints cost points
    last = grades.previous_month(grades.current_period())
    assert {r["site"]: r for r in grades.ranking(hq_server.service, last)}.get("noisy", {"metrics": {"complaints": 0}})[
        "metrics"]["complaints"] == 0  # counted in the month HQ received them
    assert "complaints" in grades.to_csv(grades.ranking(hq_server.service)).splitlines()[0]


def test_complaints_from_the_cli(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    hq_dir = tmp_path / "hq"
    service = open_hq(hq_dir)
    row = complaints.record(service, "site-a", str(uuid.uuid4()), "ORDER1", "never delivered", grades.utcnow())
    service.close()
    kit = lambda *args: run(["hq", "complaints", *args, "--hq-dir", str(hq_dir)])  # noqa: E731
    assert kit("list", "--status", "open", "--json") == 0
    assert [c["order_id"] for c in json.loads(capsys.readouterr().out)] == ["ORDER1"]
    for args in (("list", "--status", "closed"), ("resolve", "999", "--resolution", "x"),
                 ("resolve", str(row["id"]), "--resolution", " ")):
        assert kit(*args) == 2
        err = capsys.readouterr().err.strip()
        assert err and len(err.splitlines()) == 1, (args, err)
    assert kit("resolve", str(row["id"]), "--resolution", "refunded") == 0
    assert "resolved" in capsys.readouterr().out
    assert kit("resolve", str(row["id"]), "--resolution", "again") == 2
    assert kit("list", "--status", "resolved", "--json") == 0
    assert json.loads(capsys.readouterr().out)[0]["resolution"] == "refunded"

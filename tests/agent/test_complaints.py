"""A buyer's complaint, from the shop's order page to HQ's grading, against the real HQ: filed with the
order's secret (bad input refused, nothing stored), passed on by the agent from the site's outbox (kept
while HQ is away, a resend never a second complaint), listed and resolved at HQ, counted in the grade.
SQLite and PostgreSQL for the site database."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select, update

import pytest

from agent.hq_client import HQClient, HQError
from agent.settlement import SettlementOutcome, SettlementSync
from hq import complaints as hq_complaints, grades
from hq.clock import utcnow
from hq.models import AuditEvent, Complaint
from sitedb.tables import complaints
from hq.testing import free_port
from tests.agent.helpers import shop_client
from tests.storefront.http import NONCE, form_token


def _shop(tmp_path: Path, site: Any) -> Any:
    return shop_client(tmp_path / "shop", site)


def _order(shop: Any, sku: str) -> str:
    page = shop.get(f"/p/{sku}").text
    placed = shop.post(f"/p/{sku}/checkout", data={
        "csrf": form_token(page), "nonce": form_token(page, NONCE), "quantity": "1", "contact": "13800138000",
        "password": "secret-pw", "password2": "secret-pw", "account": "player-1", "region": "CN"})
    assert placed.status_code == 303, re.findall(r"class=\"(?:alert|error)[^\"]*\"[^>]*>([^<]+)", placed.text)
    return re.search(r"/order/([^?]+)", placed.headers["location"]).group(1)


def _complain(shop: Any, order_id: str, text: str, password: str = "secret-pw") -> httpx.Response:
    page = shop.get("/order").text  # a form's token (the order page has no form once a complaint is filed)
    return shop.post(f"/order/{order_id}/complaint?lang=en", data={"csrf": form_token(page), "text": text, "password": password})


def _stored(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(complaints)))


def test_a_complaint_goes_from_the_order_page_to_hqs_grade(hq, started, engine, site, tmp_path):
    sku = f"top-{site.site_id}"
    hq.seed_item(sku, category="game", price_cents=4700, stock_kind="direct_topup")
    started.sync.run()
    shop = _shop(tmp_path, site)
    order_id = _order(shop, sku)

    refusals = [("   ", 422, "Please describe"), ("x" * 2001, 413, "at most 2000"),
                ("the key did not work", 403, "no complaint was filed")]
    for text, status, words in refusals:
        answer = _complain(shop, order_id, text, "secret-pw" if status != 403 else "wrong-pw")
        assert answer.status_code == status and words in answer.text, (status, answer.text[:200])
        assert _stored(engine) == 0
    zh = shop.post(f"/order/{order_id}/complaint?lang=zh-CN", data={
        "csrf": form_token(shop.get(f"/order/{order_id}").text), "text": "", "password": "secret-pw"})
    assert zh.status_code == 422 and "请写下遇到的问题" in zh.text

    filed = _complain(shop, order_id, "  the key did not work  ")
    assert filed.status_code == 303 and "complained=1" in filed.headers["location"]
    assert 'data-complaint="saved"' in shop.get(filed.headers["location"]).text
    again = _complain(shop, order_id, "and again")
    assert again.status_code == 409 and ("one per order" in again.text or "只能投诉一次" in again.text)
    assert _stored(engine) == 1
    with engine.connect() as conn:
        row = conn.execute(select(complaints)).one()
    assert (row.order_id, row.text, row.send_state) == (order_id, "the key did not work", "pending")

    away = SettlementSync(engine, HQClient(f"http://127.0.0.1:{free_port()}", site.licence_file.read_text(),
                                           timeout=1.0, connect_timeout=0.5))
    with pytest.raises(HQError):  # HQ away: the unit stops, the loop backs off
        away.send_complaints(SettlementOutcome())
    with engine.connect() as conn:
        kept = conn.execute(select(complaints)).one()
    assert kept.send_state == "pending" and kept.send_attempts == 1  # kept, to be sent again

    with engine.begin() as conn:
        conn.execute(update(complaints).values(send_next_at=None))
    outcome = started.settlement.run()
    assert outcome.complaints_sent == 1
    with engine.begin() as conn:
        sent = conn.execute(select(complaints)).one()
        assert sent.send_state == "sent" and sent.hq_id is not None and sent.hq_status == "open"
        conn.execute(update(complaints).values(send_state="pending"))  # the answer was lost: sent once more
    assert started.settlement.run().complaints_sent == 1
    with hq.service.session() as s:
        [held] = s.scalars(select(Complaint).where(Complaint.site_id == site.site_id)).all()  # one, not two
        assert (held.order_id, held.text, held.status) == (order_id, "the key did not work", "open")
        assert "13800138000" not in repr(vars(held))  # no buyer contact at HQ
    assert grades.own_grade(hq.service, site.site_id)["metrics"]["complaints"] == 1

    listed = httpx.get(f"{hq.url}/v1/admin/complaints", params={"status": "open", "site": site.site_id},
                       headers=hq.admin_headers())
    assert [c["order_id"] for c in listed.json()] == [order_id]
    done = httpx.post(f"{hq.url}/v1/admin/complaints/{held.id}/resolve", headers=hq.admin_headers(),
                      json={"resolution": "replaced the key"})
    assert done.status_code == 200 and done.json()["status"] == "resolved"
    twice = httpx.post(f"{hq.url}/v1/admin/complaints/{held.id}/resolve", headers=hq.admin_headers(),
                       json={"resolution": "again"})
    assert twice.status_code == 409 and twice.json()["error"] == "already_resolved"
    with hq.service.session() as s:
        actions = [a.action for a in s.scalars(select(AuditEvent).where(AuditEvent.site_id == site.site_id,
                                                                        AuditEvent.action.like("complaint.%")))]
    assert actions == ["complaint.received", "complaint.resolved"]
    assert hq_complaints.listing(hq.service, "open", site.site_id) == []

    second = _order(shop, sku)  # HQ already holds a complaint about it (say, the site's database was restored)
    hq_complaints.record(hq.service, site.site_id, str(uuid.uuid4()), second, "filed before", utcnow())
    assert _complain(shop, second, "the key was used").status_code == 303
    assert started.settlement.run().complaints_refused == 1  # HQ's no is final: marked, never resent
    with engine.connect() as conn:
        refused = conn.execute(select(complaints).where(complaints.c.order_id == second)).one()
    assert refused.send_state == "refused" and "already has a complaint" in refused.send_error
    assert 'data-complaint="refused"' in shop.get(f"/order/{second}").text

"""HQ's grade of the site reaches its admin page through the agent (never a call from the storefront):
HQ answers the site's own grade on its licence, the agent copies it into the site database at most every
quarter hour, and the grade page shows it in zh-CN and English. SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from agent import grade
from agent.hq_client import HQError
from hq import grades
from sitedb.tables import site_grade
from storefront.admin_users import create_admin
from tests.agent.helpers import shop_client, write_orders
from tests.storefront.http import form_token


def _admin(tmp_path: Path, site: Any, role: str) -> Any:
    """The storefront on the agent's database with a signed-in staff member of `role`."""
    password = create_admin(site.db_url, f"staff-{role}", role=role, migrate=False)
    client = shop_client(tmp_path / f"shop-{role}", site)
    token = form_token(client.get("/admin/login").text)
    assert client.post("/admin/login", data={"csrf": token, "username": f"staff-{role}",
                                             "password": password}).status_code == 303
    return client


def test_the_agent_copies_the_sites_own_grade_and_the_admin_page_shows_it(hq, started, engine, site, tmp_path):
    finance = _admin(tmp_path, site, "finance")
    assert "grade-none" in finance.get("/admin/grade").text  # nothing copied yet: the page says so, no call to HQ
    sku = f"top-{site.site_id}"
    hq.seed_item(sku, category="game", price_cents=4700, stock_kind="direct_topup")
    write_orders(engine, 3, sku, unit_price_cents=4700)
    assert started.forwarder.forward_once().decided == 3

    assert started._pull_grade().copied  # the runner's unit: HQ's answer for this site's licence
    own = grades.own_grade(hq.service, site.site_id)
    with engine.connect() as conn:
        row = conn.execute(select(site_grade)).one()
    assert (row.period, row.grade, row.score) == (own["period"], own["grade"], own["score"])
    assert row.detail["next"] == own["next"] and row.detail["metrics"]["orders"] == 3
    assert not grade.pull_once(engine, started.settlement.client).copied  # fresh: HQ is not asked again

    plan = own["next"]
    zh = finance.get("/admin/grade", params={"lang": "zh-CN"}).text
    assert f'data-grade="{own["grade"]}"' in zh and "怎样提升评级" in zh and "复购率" in zh
    en = finance.get("/admin/grade", params={"lang": "en"}).text
    assert "What would raise it" in en and "repurchase rate" in en and own["period"] in en
    assert plan["next_grade"] is not None and plan["steps"]  # three small orders: far from A
    assert f'data-next="{plan["next_grade"]}"' in en and f'data-points="{plan["points_needed"]:.2f}"' in en
    shown = re.findall(r'<li data-metric="([a-z_]+)" data-alone="(yes|no)">', en)
    assert shown == [(s["metric"], "yes" if s["alone"] else "no") for s in plan["steps"]]
    assert "¥141.00" in en and "¥50,000.00" in en  # GMV and its scale as money, never raw cents
    assert "距 " in zh and ("提高到" in zh or "降到" in zh)
    assert finance.get("/admin/grade").status_code == 200
    assert _admin(tmp_path, site, "operator").get("/admin/grade").status_code == 200

    with engine.begin() as conn:  # an hour later the copy is stale; a refusal from HQ keeps the old copy
        conn.execute(update(site_grade).values(fetched_at=row.fetched_at - timedelta(hours=1)))
    hq.revoke(site.site_id)
    with pytest.raises(HQError):
        grade.pull_once(engine, started.settlement.client)
    with engine.connect() as conn:
        assert conn.execute(select(site_grade.c.grade)).scalar() == own["grade"]

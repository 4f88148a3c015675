"""The site admin's licence page shows a timed suspension's end date (HQ lifts it then)."""

from __future__ import annotations

from datetime import datetime, timezone

from storefront.admin_users import create_admin
from tests.storefront.http import login
from tests.storefront.support import update_site_state


def applied_command(url: str, seq: int, type_: str, payload: dict) -> None:  # type: ignore[type-arg]
    from sqlalchemy import insert

    from sitedb.engine import make_engine
    from sitedb.tables import hq_commands

    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(hq_commands).values(id=f"c-{seq}", seq=seq, type=type_, payload=payload, token="x",
                                                applied_at=datetime.now(timezone.utc), outcome="applied"))
    engine.dispose()

UNTIL = int(datetime(2031, 3, 8, 9, 30, tzinfo=timezone.utc).timestamp())


def test_the_licence_page_shows_the_suspension_and_its_end(sqlite_site) -> None:  # type: ignore[no-untyped-def]
    # as the agent leaves a timed `suspend` command: applied, its payload kept, the state suspended
    applied_command(sqlite_site.db_url, 1, "resume", {})
    applied_command(sqlite_site.db_url, 2, "suspend", {"reason": "chargebacks", "until": UNTIL})
    update_site_state(sqlite_site.db_url, licence_status="suspended", status_reason="chargebacks")
    client = login(sqlite_site.base, "owner", create_admin(sqlite_site.db_url, "owner", migrate=False))
    page = client.get("/admin/licence").text
    assert "chargebacks" in page and 'id="suspended-until">2031-03-08 17:30 CST<' in page  # the site's zone: Asia/Shanghai by default
    assert "暂停至" in page  # the shop's language (zh-CN)

"""The admin's pages as a site owner uses them (ASGI app in-process): audit log, stock, safe defaults,
readable health and licence, figures per role, the site's time zone, search by category."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, insert, select

from sitedb.engine import make_engine
from sitedb.tables import audit_log
from storefront.admin_users import create_admin
from tests.storefront.http import form_token
from tests.storefront.support import seed, update_site_state, write_site_files
from tests.storefront.test_app_inprocess import _app

pytestmark = pytest.mark.filterwarnings("ignore:.*httpx.*")


@pytest.fixture
def shop(tmp_path):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)
    client, app_shop = _app(tmp_path / "site", url)
    return url, client, app_shop


def _as(client, url: str, role: str, name: str | None = None):  # type: ignore[no-untyped-def]
    name = name or f"t-{role}"
    password = create_admin(url, name, role=role, migrate=False)
    client.cookies.clear()
    token = form_token(client.get("/admin/login").text)
    assert client.post("/admin/login", data={"csrf": token, "username": name, "password": password}).status_code == 303
    return client


def _audit(url: str, *rows: tuple[datetime, str, str, dict]) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        for at, actor, action, detail in rows:
            conn.execute(insert(audit_log).values(at=at, actor=actor, action=action, detail=detail))
    engine.dispose()


def _audit_count(url: str) -> int:
    engine = make_engine(url)
    with engine.connect() as conn:
        n = conn.scalar(select(func.count()).select_from(audit_log))
    engine.dispose()
    return int(n)


# ---- audit log ---------------------------------------------------------------

def _table(page: str) -> str:
    """The page's entries (the filter's lists name every action and person the log holds)."""
    assert 'id="audit"' in page, page[:300]
    return page.split('id="audit"')[1]


def test_the_audit_log_filters_by_person_action_and_the_sites_day(shop):
    url, client, _ = shop
    _as(client, url, "admin", "boss")
    day = datetime(2026, 3, 1, 17, 0, tzinfo=timezone.utc)  # 2026-03-02 01:00 in Shanghai
    _audit(url, (day, "admin:alice", "price_rule_saved", {"id": 7, "repriced": 3}),
           (day - timedelta(hours=10), "admin:bob", "price_rule_deleted", {"id": 2, "repriced": 1}),
           (day, "agent", "licence_loaded", {"tier": "pro", "ok": True}))
    page = _table(client.get("/admin/audit").text)
    assert "保存价格规则" in page and "载入授权" in page and "代理程序" in page
    assert "repriced: 3" in page and "ok: 是" in page and "{'" not in page  # detail readable, no reprs
    by_alice = _table(client.get("/admin/audit", params={"actor": "admin:alice"}).text)
    assert "保存价格规则" in by_alice and "删除价格规则" not in by_alice and "载入授权" not in by_alice
    deleted = _table(client.get("/admin/audit", params={"action": "price_rule_deleted"}).text)
    assert "删除价格规则" in deleted and "保存价格规则" not in deleted
    # the site's day: 2026-03-02 in Shanghai holds alice's and the agent's entries, not bob's (2026-03-01 15:00)
    second = _table(client.get("/admin/audit", params={"start": "2026-03-02", "end": "2026-03-02"}).text)
    assert "保存价格规则" in second and "删除价格规则" not in second
    assert "2026-03-02 01:00 CST" in second


def test_the_audit_csv_carries_the_same_selection(shop):
    url, client, _ = shop
    _as(client, url, "admin", "boss")
    now = datetime.now(timezone.utc)
    _audit(url, (now, "admin:alice", "price_rule_saved", {"id": 7, "note": "=HYPERLINK(1)"}),
           (now, "agent", "catalog_swept", {"removed": 2}))
    page = client.get("/admin/audit", params={"actor": "admin:alice"}).text
    assert 'href="/admin/audit.csv?actor=admin%3Aalice"' in page
    r = client.get("/admin/audit.csv", params={"actor": "admin:alice"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"].startswith('attachment; filename="audit-')
    rows = list(csv.reader(io.StringIO(r.text.lstrip("\ufeff"))))
    assert rows[0] == ["id", "at", "actor", "action", "detail"]
    assert [row[2:4] for row in rows[1:]] == [["admin:alice", "price_rule_saved"]]
    assert rows[1][4].startswith('{"id": 7')  # JSON detail (quoted by CSV, never a formula at a cell's start)


@pytest.mark.parametrize("params, field", [({"start": "2026-13-01"}, "e-start"), ({"actor": "x' OR 1=1"}, "e-actor"),
                                           ({"start": "2026-03-02", "end": "2026-03-01"}, "e-end"),
                                           ({"action": "a" * 65}, "e-action")])
def test_a_bad_audit_filter_is_one_clear_error_and_changes_nothing(shop, params, field):
    url, client, _ = shop
    _as(client, url, "admin", "boss")
    before = _audit_count(url)
    r = client.get("/admin/audit", params=params)
    assert r.status_code == 422 and f'id="{field}"' in r.text
    assert client.get("/admin/audit.csv", params=params).status_code == 422
    assert _audit_count(url) == before


def test_only_the_admin_reads_the_audit_log(shop):
    url, client, _ = shop
    for role in ("operator", "finance"):
        _as(client, url, role)
        assert client.get("/admin/audit").status_code == 403
        assert client.get("/admin/audit.csv").status_code == 403
        assert "/admin/audit" not in client.get("/admin").text
    _as(client, url, "admin")
    assert 'href="/admin/audit"' in client.get("/admin").text


# ---- catalog stock -------------------------------------------------------------

def test_the_catalog_shows_stock_and_flags_low_stock(shop):
    url, client, _ = shop
    _as(client, url, "operator")
    page = client.get("/admin/catalog").text
    assert "<th>库存</th>" in page
    row = lambda sku: page.split(f'data-sku="{sku}"')[1].split("</tr>")[0]  # noqa: E731
    assert "120" in row("G-QQ-100") and "库存不足" not in row("G-QQ-100")
    assert '<tr data-sku="G-STEAM-200" class="low">' in page and "库存不足" in row("G-STEAM-200")  # 8 left
    assert "缺货" in row("M-BILI-Y")  # 0 left
    assert "不限" in row("P-CM-50")  # a direct top-up has no stock
    assert 'id="low-stock"' in page and "2 个在售商品库存不足" in page
    assert "在售" in row("G-QQ-100") and ">active<" not in page


# ---- staff accounts --------------------------------------------------------------

def test_a_new_account_defaults_to_the_least_role_and_the_date_column_says_created(shop):
    from storefront.admin.auth import least_role

    url, client, _ = shop
    _as(client, url, "admin", "boss")
    page = client.get("/admin/users").text
    assert least_role() == "operator"  # opens the fewest pages (no money: no revenue, settlement, payouts, licence)
    assert '<option value="operator" selected>' in page and '<option value="admin" selected>' not in page
    assert "<th>创建时间</th>" in page and "下单时间" not in page


# ---- health, licence ---------------------------------------------------------------

def test_health_and_licence_pages_read_as_words_not_python(shop):
    url, client, _ = shop
    update_site_state(url, tier="flagship", features=["storefront", "custom-theme", "api-access"],
                      health={"hq_reachable": True, "outbox_alert": False, "hq_unreachable_since": None, "db": "ok",
                              "hq_licence_view": {"status": "active", "reason": None}, "new_key": {"a": [1, None]}})
    _as(client, url, "admin")
    health = client.get("/admin/health").text
    for python in ("True", "False", "None", "{'", "':"):
        assert python not in health, python
    assert "总部可达</th><td>是" in health and "积压告警</th><td>否" in health and "总部所见的授权状态</th><td>正常" in health
    assert "new_key</th><td>a: 1, —" in health  # a key this kit does not know: its name, its value readable
    licence = client.get("/admin/licence").text
    assert '<dd id="tier">旗舰版</dd>' in licence and "自定义主题" in licence and "分销 API" in licence
    assert "custom-theme" not in licence
    english = client.get("/admin/licence", params={"lang": "en"}).text
    assert '<dd id="tier">Flagship</dd>' in english and "Custom theme" in english


# ---- figures per role ----------------------------------------------------------------

def test_the_overview_shows_revenue_only_to_roles_the_revenue_report_is_open_to(shop):
    url, client, _ = shop
    for role, sees in (("admin", True), ("finance", True), ("operator", False)):
        _as(client, url, role)
        page = client.get("/admin").text
        assert ('id="revenue-today"' in page) is sees, role
        assert (client.get("/admin/revenue").status_code == 200) is sees, role


# ---- the site's time zone --------------------------------------------------------------

def test_times_are_shown_in_the_sites_time_zone(tmp_path):
    import json

    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)
    moment = datetime(2026, 3, 1, 20, 30, tzinfo=timezone.utc)
    update_site_state(url, last_sync_at=moment)
    client, _ = _app(tmp_path / "shanghai", url)
    _as(client, url, "admin", "boss")
    assert "2026-03-02 04:30 CST" in client.get("/admin/health").text
    env = write_site_files(tmp_path / "utc")
    site = json.loads(open(env["KIT_SITE_CONFIG"]).read())
    open(env["KIT_SITE_CONFIG"], "w").write(json.dumps({**site, "time_zone": "UTC"}))
    from starlette.testclient import TestClient

    from storefront.app import create_app
    from storefront.settings import StorefrontSettings

    app = create_app(StorefrontSettings(database_url=url, site_config=env["KIT_SITE_CONFIG"],
                                        secret_key_file=env["KIT_SECRET_KEY_FILE"], site_key_file=env["KIT_SITE_KEY_FILE"],
                                        branding_dir=env["KIT_BRANDING_DIR"], state_cache_seconds=0))
    utc = TestClient(app, base_url="http://testserver", follow_redirects=False)
    _as(utc, url, "admin", "boss2")
    assert "2026-03-01 20:30 UTC" in utc.get("/admin/health").text


def test_today_on_the_overview_is_the_sites_day():
    from storefront.clock import local_midnight

    late_utc = datetime(2026, 3, 1, 17, 0, tzinfo=timezone.utc)  # already 2026-03-02 01:00 in Shanghai
    assert local_midnight("Asia/Shanghai", late_utc) == datetime(2026, 3, 1, 16, 0, tzinfo=timezone.utc)
    assert local_midnight("UTC", late_utc) == datetime(2026, 3, 1, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("zone, message", [("Mars/Olympus", "not in the zone database"), ("../etc/passwd", "not an IANA name"),
                                           ("Asia/Shanghai\n", "not an IANA name")])
def test_a_bad_time_zone_is_refused_with_one_line(zone, message):
    from pydantic import ValidationError

    from kitcore.site import parse_site_json

    with pytest.raises(ValidationError) as refused:
        parse_site_json({"site_id": "x", "time_zone": zone})
    assert message in str(refused.value)
    assert parse_site_json({"site_id": "x"}).time_zone == "Asia/Shanghai"


# ---- search --------------------------------------------------------------------------

@pytest.mark.parametrize("query, found, not_found", [
    ("会员充值", {"M-IQY-VIP"}, {"G-QQ-100"}),  # the category's zh-CN name (no product is named so)
    ("Phone top-up", {"P-CM-50", "P-CU-100"}, {"G-QQ-100"}),  # its en name
    ("membership", {"M-IQY-VIP"}, {"P-CM-50"}),  # its code
    ("Q币", {"G-QQ-100"}, {"M-IQY-VIP"}),  # a product name still matches
])
def test_search_matches_product_and_category_names(shop, query, found, not_found):
    _, client, _ = shop
    page = client.get("/", params={"q": query}).text
    for sku in found:
        assert f"/p/{sku}" in page, (query, sku)
    for sku in not_found:
        assert f"/p/{sku}" not in page, (query, sku)

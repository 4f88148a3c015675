"""Each admin page, for each role, in each locale, in headless Chromium against the real server.

A role opens the pages its row of the access matrix (tests/storefront/test_roles.py,
written out there, not read from the code) allows and gets the refusal page for the
rest; its menu offers exactly those pages; every page it opens is in the chosen
language (zh-CN: no English, by the same check as the in-process walk). One browser
for the module, one context per role and locale.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from storefront.admin_users import create_admin
from storefront.i18n import translator
from tests.storefront.test_roles import EXPECTED
from tests.storefront.untranslated import english_words

pytestmark = pytest.mark.browser

# the admin's pages (GET, in the menu) and the message key of each one's heading
PAGES = {"admin_dashboard": ("/admin", "admin.dashboard"), "admin_rules": ("/admin/rules", "admin.rules"),
         "admin_catalog": ("/admin/catalog", "admin.catalog"), "admin_orders": ("/admin/orders", "admin.orders"),
         "admin_revenue": ("/admin/revenue", "admin.revenue"), "admin_settlement": ("/admin/settlement", "admin.settlement"),
         "admin_payouts": ("/admin/payouts", "admin.payouts"), "admin_licence": ("/admin/licence", "admin.licence"),
         "admin_health": ("/admin/health", "admin.health"), "admin_grade": ("/admin/grade", "admin.grade"),
         "admin_coupons": ("/admin/coupons", "admin.coupons"),
         "admin_users": ("/admin/users", "admin.users"), "admin_audit": ("/admin/audit", "admin.audit"),
         "admin_api_keys": ("/admin/api-keys", "admin.api_keys"),
         "admin_password": ("/admin/password", "admin.change_password"),
         "admin_settlement_statement": ("/admin/settlement/7", "settle.statement")}  # the statement `passwords` adds
HEADING_ARGS = {"settle.statement": {"start": "2026-10-01", "end": "2026-11-01"}}
MENU = set(PAGES) - {"admin_password", "admin_api_keys", "admin_settlement_statement"}  # own password: in the top
# bar; API keys: the seeded licence (coupons, notify) does not grant api-access, so that page says why and is not in
# the menu (test_the_api_keys_page_of_a_licensed_site_in_each_locale has it); a statement: from the statements page


@pytest.fixture(scope="module")
def passwords(module_site):  # type: ignore[no-untyped-def]
    """An account per role; and a statement from HQ, so its page is walked too."""
    from tests.storefront.test_settlement_pages import _statement

    _statement(module_site.db_url)
    return {role: create_admin(module_site.db_url, f"b-{role}", role=role, migrate=False)
            for role in ("admin", "operator", "finance")}


def _sign_in(chromium, base: str, role: str, password: str, locale: str):  # type: ignore[no-untyped-def]
    context = chromium.new_context(locale=locale)
    page = context.new_page()
    page.goto(f"{base}/admin/login?lang={locale}")
    page.fill("#f-username", f"b-{role}")
    page.fill("#f-password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/admin")
    return context, page


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
@pytest.mark.parametrize("role", ["admin", "operator", "finance"])
def test_each_admin_page_per_role_and_locale(module_site, chromium, passwords, role, locale):
    t = translator(locale)
    context, page = _sign_in(chromium, module_site.base, role, passwords[role], locale)
    try:
        menu = set(page.eval_on_selector_all("nav.side a", "links => links.map(a => a.getAttribute('href'))"))
        allowed = {name for name in PAGES if role in EXPECTED[name]}
        assert menu == {PAGES[name][0] for name in allowed & MENU}, (role, menu)
        for name, (path, heading) in PAGES.items():
            answer = page.goto(module_site.base + path)
            if name not in allowed:
                assert answer.status == 403, (role, path, answer.status)
                assert page.inner_text("main") and t("err.forbidden") in page.content()
                continue
            assert answer.status == 200, (role, path, answer.status)
            assert page.inner_text("h1") == t(heading, **HEADING_ARGS.get(heading, {})), (role, path)
            assert page.get_attribute("html", "lang") == locale
            if locale == "zh-CN":
                assert not english_words(page.content()), (role, path, english_words(page.content()))
    finally:
        context.close()


def test_the_admin_filters_the_audit_log_and_creates_a_least_role_account(module_site, chromium, passwords):
    context, page = _sign_in(chromium, module_site.base, "admin", passwords["admin"], "zh-CN")
    try:
        page.goto(module_site.base + "/admin/users")
        assert page.input_value("#f-role") == "operator"  # the least role, unless the admin chooses more
        page.fill("#f-username", "new-hire")
        page.click("form.grid-form button[type=submit]")
        assert page.inner_text("tr[data-user=new-hire] td:nth-child(2)") == "运营"
        page.goto(module_site.base + "/admin/audit")
        page.select_option("#f-action", "admin_user_created")
        page.select_option("#f-actor", "admin:b-admin")
        page.click("#audit-filter button[type=submit]")
        rows = page.eval_on_selector_all("#audit tbody tr", "rows => rows.map(r => r.dataset.action)")
        assert rows == ["admin_user_created"], rows
        assert "new-hire" in page.inner_text("#audit") and "创建账号" in page.inner_text("#audit")
        assert page.get_attribute("#audit-csv", "href") == "/admin/audit.csv?actor=admin%3Ab-admin&action=admin_user_created"
    finally:
        context.close()


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_the_login_page_in_each_locale(module_site, chromium, locale):
    context = chromium.new_context(locale=locale)
    try:
        page = context.new_page()
        assert page.goto(f"{module_site.base}/admin/login?lang={locale}").status == 200
        assert page.inner_text("h1") == translator(locale)("admin.title")
        assert page.get_attribute("html", "lang") == locale
        if locale == "zh-CN":
            assert not english_words(page.content()), english_words(page.content())
    finally:
        context.close()


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_the_api_keys_page_of_a_licensed_site_in_each_locale(module_site, chromium, passwords, locale):
    """A pro site (api-access): the page is in the admin's menu only, the admin makes a key there and it is listed
    with its scopes in the page's language; the operator is refused."""
    from tests.storefront.support import update_site_state
    from tests.support.waiting import eventually

    t = translator(locale)
    seeded = _features(module_site.db_url)
    update_site_state(module_site.db_url, features=[*seeded, "api-access"])
    try:
        context, page = _sign_in(chromium, module_site.base, "admin", passwords["admin"], locale)
        try:
            eventually(lambda: page.goto(module_site.base + "/admin/api-keys").ok and page.query_selector("#api-key-form"),
                       10, 0.3, what="the key form (the licence read anew)")
            assert page.inner_text("h1") == t("admin.api_keys") and page.query_selector("#api-not-licensed") is None
            assert "/admin/api-keys" in page.eval_on_selector_all("nav.side a", "as => as.map(a => a.getAttribute('href'))")
            page.fill("#f-name", f"shop {locale}")
            page.click("#api-key-form button[type=submit]")
            assert page.inner_text("#new-token").startswith("kit_")
            row = page.inner_text(f"#api-keys tr:has-text('shop {locale}')")
            assert t("api.scope.catalog:read") in row and t("api.scope.orders:read") in row, row
            if locale == "zh-CN":
                assert not english_words(page.content()), english_words(page.content())
        finally:
            context.close()
        context, page = _sign_in(chromium, module_site.base, "operator", passwords["operator"], locale)
        try:
            assert page.goto(module_site.base + "/admin/api-keys").status == 403
        finally:
            context.close()
    finally:
        update_site_state(module_site.db_url, features=seeded)


def _features(url: str) -> list[str]:
    from sitedb.engine import make_engine
    from sitedb.models import SiteState

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(SiteState.features)).scalar_one())
    finally:
        engine.dispose()

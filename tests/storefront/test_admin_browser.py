"""Each admin page, for each role, in each locale, in headless Chromium against the real server.

A role opens the pages its row of the access matrix (tests/storefront/test_roles.py,
written out there, not read from the code) allows and gets the refusal page for the
rest; its menu offers exactly those pages; every page it opens is in the chosen
language (zh-CN: no English, by the same check as the in-process walk). One browser
for the module, one context per role and locale.
"""

from __future__ import annotations

import pytest

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
         "admin_health": ("/admin/health", "admin.health"), "admin_coupons": ("/admin/coupons", "admin.coupons"),
         "admin_users": ("/admin/users", "admin.users"), "admin_audit": ("/admin/audit", "admin.audit"),
         "admin_api_keys": ("/admin/api-keys", "admin.api_keys"),
         "admin_password": ("/admin/password", "admin.change_password")}
MENU = set(PAGES) - {"admin_password", "admin_api_keys"}  # own password: in the top bar; API keys: the seeded
# licence (coupons, notify) does not grant api-access, so that page says why and is not in the menu


@pytest.fixture(scope="module")
def passwords(module_site):  # type: ignore[no-untyped-def]
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
            assert page.inner_text("h1") == t(heading), (role, path)
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

"""The coupons admin page (issue 14): a licence feature the shop shows is usable from the site admin.

In-process through the ASGI app on SQLite, with the real coupons plugin: the
page lists, creates, disables and enables coupons for a site whose licence
grants them; for one whose licence does not, it says why and changes nothing.
A coupon made here is taken at checkout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from storefront.admin_users import create_admin
from tests.storefront.http import form_token
from tests.storefront.support import seed, update_site_state
from tests.storefront.test_app_inprocess import _app, _submit

pytestmark = pytest.mark.filterwarnings("ignore:.*httpx.*")


def _features(url: str, features: list[str], tier: str) -> None:
    update_site_state(url, features=features, tier=tier)


def _signed_in(tmp_path: Path, url: str, role: str = "operator") -> Any:
    password = create_admin(url, f"staff-{role}", role=role, migrate=False)
    client, _ = _app(tmp_path / role, url)
    token = form_token(client.get("/admin/login").text)
    r = client.post("/admin/login", data={"csrf": token, "username": f"staff-{role}", "password": password})
    assert r.status_code == 303
    return client


def _post(client: Any, path: str, **data: str) -> Any:
    return client.post(path, data={"csrf": form_token(client.get("/admin/coupons").text), **data})


@pytest.fixture
def shop_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)  # a pro licence: coupons granted
    return url


def test_operator_creates_lists_disables_and_enables_a_coupon(tmp_path: Path, shop_url: str) -> None:
    client = _signed_in(tmp_path, shop_url)
    assert "/admin/coupons" in client.get("/admin").text  # in the menu of a licensed site
    made = _post(client, "/admin/coupons", code="spring10", kind="percent", amount="10", max_uses="5")
    assert made.status_code == 200 and "优惠码 SPRING10 已创建" in made.text
    row = made.text.split('data-coupon="SPRING10"')[1].split("</tr>")[0]
    assert "10%" in row and "0 / 5" in row and "正常" in row
    off = _post(client, "/admin/coupons/SPRING10/disable")
    assert off.status_code == 200 and "已停用" in off.text.split('data-coupon="SPRING10"')[1].split("</tr>")[0]
    on = _post(client, "/admin/coupons/spring10/enable")
    assert "正常" in on.text.split('data-coupon="SPRING10"')[1].split("</tr>")[0]
    fixed = _post(client, "/admin/coupons", code="FIVE", kind="fixed", amount="5.00")
    assert "5.00" in fixed.text.split('data-coupon="FIVE"')[1].split("</tr>")[0]


def test_a_coupon_made_on_the_page_is_taken_at_checkout(tmp_path: Path, shop_url: str) -> None:
    client = _signed_in(tmp_path, shop_url)
    _post(client, "/admin/coupons", code="TAKE5", kind="fixed", amount="5")
    buyer, _ = _app(tmp_path / "buyer", shop_url)
    assert buyer.get("/p/G-QQ-100").text.count('name="x_coupon"') == 1
    placed = _submit(buyer, "G-QQ-100", x_coupon="take5")
    assert placed.status_code == 303, placed.text[:400]
    assert "0 / " not in client.get("/admin/coupons").text.split('data-coupon="TAKE5"')[1].split("</tr>")[0]
    assert ">1<" in client.get("/admin/coupons").text.split('data-coupon="TAKE5"')[1].split("</tr>")[0]


@pytest.mark.parametrize("form, field", [
    ({"code": "x", "kind": "percent", "amount": "10"}, "form"),  # the plugin's own rule: 3-32 characters
    ({"code": "GOOD1", "kind": "percent", "amount": "150"}, "amount"),
    ({"code": "GOOD2", "kind": "fixed", "amount": "0.001"}, "amount"),
    ({"code": "GOOD3", "kind": "fixed", "amount": "nan"}, "amount"),
    ({"code": "GOOD4", "kind": "both", "amount": "1"}, "kind"),
    ({"code": "GOOD5", "kind": "percent", "amount": "1", "max_uses": "-1"}, "max_uses"),
])
def test_a_bad_coupon_form_names_the_field_and_writes_nothing(tmp_path: Path, shop_url: str, form: dict[str, str],
                                                              field: str) -> None:
    client = _signed_in(tmp_path, shop_url)
    refused = _post(client, "/admin/coupons", **form)
    assert refused.status_code == 422 and f'id="e-{field}"' in refused.text
    assert "data-coupon=" not in refused.text


def test_a_second_coupon_with_the_same_code_is_refused(tmp_path: Path, shop_url: str) -> None:
    client = _signed_in(tmp_path, shop_url)
    _post(client, "/admin/coupons", code="ONCE", kind="percent", amount="5")
    again = _post(client, "/admin/coupons", code="once", kind="percent", amount="7")
    assert again.status_code == 422 and "already exists" in again.text
    assert again.text.count('data-coupon="ONCE"') == 1


def test_disabling_a_coupon_that_does_not_exist_is_not_found(tmp_path: Path, shop_url: str) -> None:
    client = _signed_in(tmp_path, shop_url)
    assert _post(client, "/admin/coupons/NOPE/disable").status_code == 404


def test_an_unlicensed_site_says_why_and_changes_nothing(tmp_path: Path, shop_url: str) -> None:
    _features(shop_url, ["notify"], "basic")
    client = _signed_in(tmp_path, shop_url, role="admin")
    assert "/admin/coupons" not in client.get("/admin").text  # not offered in the menu
    page = client.get("/admin/coupons?lang=en")
    assert page.status_code == 200 and 'id="coupons-refused"' in page.text
    assert "does not include coupons" in page.text and "tier pro" in page.text and 'id="f-code"' not in page.text
    refused = _post(client, "/admin/coupons", code="SNEAKY", kind="percent", amount="50")
    assert refused.status_code == 409 and 'id="coupons-refused"' in refused.text
    _features(shop_url, ["coupons", "notify"], "pro")  # HQ upgrades by heartbeat: the page works, and is empty
    assert 'id="f-code"' in client.get("/admin/coupons").text
    assert "data-coupon=" not in client.get("/admin/coupons").text


def test_finance_may_not_touch_coupons(tmp_path: Path, shop_url: str) -> None:
    client = _signed_in(tmp_path, shop_url, role="finance")
    assert client.get("/admin/coupons").status_code == 403
    token = form_token(client.get("/admin").text)
    assert client.post("/admin/coupons", data={"csrf": token, "code": "FIN", "kind": "percent", "amount": "9"}).status_code == 403


def test_plugin_admin_command_goes_by_the_licence_in_the_site_database(tmp_path: Path, shop_url: str) -> None:
    """The container side of `kitctl plugins admin` on a deployed site: HQ's upgrade counts at once (issue 14, case 4)."""
    import json

    from tests.storefront.test_units import _run

    env = {"KIT_DATABASE_URL": shop_url}
    _features(shop_url, ["notify"], "basic")
    refused = _run(["plugin-admin", "coupons", "add", json.dumps({"code": "EARLY", "percent": "10"})], env)
    assert refused.returncode == 2 and refused.stderr.startswith("error: coupons needs feature 'coupons' (tier pro")
    assert len(refused.stderr.strip().splitlines()) == 1
    _features(shop_url, ["coupons", "notify"], "pro")  # what the agent writes when HQ's heartbeat brings pro
    made = _run(["plugin-admin", "coupons", "add", json.dumps({"code": "spring", "percent": "10", "max_uses": "3"})], env)
    assert made.returncode == 0, made.stderr
    assert [(r["code"], r["off"], r["max_uses"]) for r in json.loads(made.stdout)] == [("SPRING", "10%", 3)]
    for bad, says in ((["coupons", "add", '{"code": "x", "percent": "10"}'], "coupons add: code"),
                      (["coupons", "add", '{"code": "OK1", "percent": "10", "nope": "1"}'], "nope"),
                      (["coupons", "explode"], "no action 'explode'"), (["coupons", "list", "[1]"], "JSON object"),
                      (["coupons"], "usage:")):
        answer = _run(["plugin-admin", *bad], env)
        assert answer.returncode == 2 and says in answer.stderr, (bad, answer.stderr)
    listed = _run(["plugin-admin", "coupons", "list"], env)
    assert [r["code"] for r in json.loads(listed.stdout)] == ["SPRING"]

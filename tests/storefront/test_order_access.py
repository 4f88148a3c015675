"""An order's card keys show only to a browser that proved the order password (plain HTTP, no browser).

The Chromium test walks the same story through the pages; this one states the
rule at the HTTP level so it holds without a browser: the order number alone,
a wrong password, the buyer's contact, another order's grant or a forged
grant cookie never show a key; the placing browser and the right password do.
"""

from __future__ import annotations

import httpx

from storefront.shop import ACCESS_COOKIE
from tests.storefront.http import checkout, form_token
from tests.storefront.support import record_decision

SECRET = "ZXCV-5678-QWER"


def _placed(site, password: str) -> tuple[httpx.Client, str]:  # type: ignore[no-untyped-def]
    buyer = httpx.Client(base_url=site.base, timeout=30)
    r = checkout(buyer, "G-QQ-100", password=password, password2=password)
    assert r.status_code == 303, r.text[:300]
    return buyer, r.headers["location"].split("/")[-1].split("?")[0]


def _lookup(client: httpx.Client, order_id: str, password: str) -> httpx.Response:
    token = form_token(client.get("/order").text)
    return client.post("/order", data={"csrf": token, "order_id": order_id, "password": password})


def test_card_keys_only_with_the_order_password(module_site):
    buyer, order_id = _placed(module_site, "pw-of-this-order")
    record_decision(module_site.db_url, order_id, module_site.site_key, status="delivered", decision="approve",
                    card_keys=[{"serial": "QQ-0001", "secret": SECRET}])
    assert SECRET in buyer.get(f"/order/{order_id}").text  # the browser that placed it

    stranger = httpx.Client(base_url=module_site.base, timeout=30)
    page = stranger.get(f"/order/{order_id}")
    assert page.status_code == 200 and SECRET not in page.text and 'name="password"' in page.text
    for wrong in ("13800138000", "pw-of-another-order", ""):
        r = _lookup(stranger, order_id, wrong)
        assert r.status_code == 403 and SECRET not in r.text
    assert SECRET not in stranger.get(f"/order/{order_id}").text

    r = _lookup(stranger, order_id, "pw-of-this-order")
    assert r.status_code == 303 and r.headers["location"] == f"/order/{order_id}"
    assert SECRET in stranger.get(f"/order/{order_id}").text


def test_a_grant_opens_only_its_own_order_and_cannot_be_forged(module_site):
    first, first_id = _placed(module_site, "first-password")
    _, second_id = _placed(module_site, "second-password")
    record_decision(module_site.db_url, second_id, module_site.site_key, status="delivered", decision="approve",
                    card_keys=[{"serial": "QQ-0002", "secret": SECRET}])
    assert SECRET not in first.get(f"/order/{second_id}").text  # granted the first order, not the second

    grant = first.cookies.get(ACCESS_COOKIE)
    record_decision(module_site.db_url, first_id, module_site.site_key, status="delivered", decision="approve",
                    card_keys=[{"serial": "QQ-0003", "secret": "FIRST-KEY-0003"}])
    assert "FIRST-KEY-0003" in _with_grant(module_site, grant).get(f"/order/{first_id}").text
    body, _, mac = grant.rpartition(".")
    tampered = body + "." + mac[:-2] + ("AA" if mac[-2:] != "AA" else "BB")
    assert "FIRST-KEY-0003" not in _with_grant(module_site, tampered).get(f"/order/{first_id}").text


def _with_grant(site, value: str) -> httpx.Client:  # type: ignore[no-untyped-def]
    return httpx.Client(base_url=site.base, timeout=30, cookies={ACCESS_COOKIE: value})

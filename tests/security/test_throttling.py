"""Guessing is throttled by client and account together: nobody can lock the owner out.

Before, five wrong passwords from anywhere locked a known admin name for 15
minutes, and five wrong order passwords locked the buyer out of their order.
"""

from __future__ import annotations

from tests.storefront.http import NONCE, form_token

ATTACKER = "192.0.2.66"
OWNER = "198.51.100.7"


def test_admin_guessing_from_one_client_does_not_lock_the_owner_out(shop):
    password = shop.add_staff("owner")
    attacker = shop.client(ATTACKER)
    for _ in range(5):
        assert shop.attempt(attacker, "owner", "guess").status_code == 401
    # the guesser is slowed down: even the right password is not tried from there now
    assert shop.attempt(attacker, "owner", password).status_code == 429
    # the owner, from their own client, gets in at once
    assert shop.attempt(shop.client(OWNER), "owner", password).status_code == 303


def test_admin_guessing_from_many_clients_still_lets_a_fresh_client_in(shop):
    password = shop.add_staff("owner")
    botnet = [shop.client(f"192.0.2.{n}") for n in range(1, 7)]
    for bot in botnet:
        for _ in range(5):
            shop.attempt(bot, "owner", "guess")
    # the account is now careful: a client that failed for it may not try again
    assert shop.attempt(botnet[0], "owner", "guess").status_code == 429
    assert shop.attempt(shop.client("192.0.2.99"), "owner", "still-guessing").status_code == 401
    assert shop.attempt(shop.client("192.0.2.99"), "owner", "again").status_code == 429
    # a fresh client with the right password is let in
    assert shop.attempt(shop.client(OWNER), "owner", password).status_code == 303


def test_one_client_cannot_spread_its_guesses_over_many_accounts(shop):
    attacker = shop.client(ATTACKER)
    codes = [shop.attempt(attacker, f"user{n}", "guess").status_code for n in range(25)]
    assert codes[:20] == [401] * 20 and set(codes[20:]) == {429}


def _place_order(shop, password: str) -> str:
    buyer = shop.client(OWNER)
    page = buyer.get("/p/G-QQ-100").text
    resp = buyer.post("/p/G-QQ-100/checkout", data={
        "csrf": form_token(page), "nonce": form_token(page, NONCE), "quantity": "1", "contact": "13800138000",
        "password": password, "password2": password})
    assert resp.status_code == 303, resp.text[:300]
    return resp.headers["location"].split("/order/")[1].split("?")[0]


def _lookup(client, order_id: str, password: str) -> int:  # type: ignore[no-untyped-def]
    token = form_token(client.get("/order").text)
    return client.post("/order", data={"csrf": token, "order_id": order_id, "password": password}).status_code


def test_order_password_guessing_does_not_lock_the_buyer_out(shop):
    order_id = _place_order(shop, "buyer-secret")
    attacker = shop.client(ATTACKER)
    for _ in range(5):
        assert _lookup(attacker, order_id, "guess") == 403
    assert _lookup(attacker, order_id, "buyer-secret") == 429
    assert _lookup(shop.client("198.51.100.77"), order_id, "buyer-secret") == 303

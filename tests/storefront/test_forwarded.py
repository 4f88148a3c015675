"""Only the stack's proxy may tell the storefront who the buyer is (issue 14, case 5).

The storefront used to believe X-Forwarded-For from any private address: any
container on the site's network could pass any address off as the buyer's.
Through the served app in-process, with the peer address chosen per request.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from sitedb.engine import make_engine
from sitedb.models import Order
from storefront.forwarded import RESOLVE_EVERY, TrustedPeers
from storefront.settings import StorefrontSettings
from tests.storefront.http import NONCE, form_token
from tests.storefront.support import seed, write_site_files

pytestmark = pytest.mark.filterwarnings("ignore:.*httpx.*")
PROXY, NEIGHBOUR, BUYER = "172.20.0.4", "172.20.0.7", "203.0.113.9"


def _served(tmp_path: Path, url: str, peer: str, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """The app as `python -m storefront` serves it, with KIT_FORWARDED_ALLOW_IPS=proxy as compose sets it."""
    from starlette.testclient import TestClient

    from storefront import forwarded, web
    from storefront.app import served_app, shop_of

    monkeypatch.setattr(forwarded, "resolve_host", lambda name: {PROXY} if name == "proxy" else set())
    monkeypatch.setattr(web, "default_gateway", lambda: "172.20.0.1")
    env = write_site_files(tmp_path / "site")
    settings = StorefrontSettings(database_url=url, site_config=env["KIT_SITE_CONFIG"], secret_key_file=env["KIT_SECRET_KEY_FILE"],
                                  site_key_file=env["KIT_SITE_KEY_FILE"], branding_dir=env["KIT_BRANDING_DIR"],
                                  state_cache_seconds=0, forwarded_allow_ips="proxy")
    app = served_app(settings)
    return TestClient(app, client=(peer, 40000), follow_redirects=False), shop_of(app)


def _recorded_address(url: str, shop: Any, **headers: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            order_id, sealed = conn.execute(select(Order.id, Order.buyer_sealed).order_by(Order.created_at.desc())).first()
    finally:
        engine.dispose()
    return shop.buyers.open(order_id, sealed).ip


def _await(coroutine):  # type: ignore[no-untyped-def]
    """Run `coroutine` on a loop of its own thread: an earlier test (Playwright's sync API) may leave one running here."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _order(client: Any, **headers: str) -> None:
    page = client.get("/p/G-QQ-100", headers=headers).text
    data = {"csrf": form_token(page), "nonce": form_token(page, NONCE), "quantity": "1", "contact": "13800138000",
            "password": "secret-pw", "password2": "secret-pw"}
    placed = client.post("/p/G-QQ-100/checkout", data=data, headers=headers)
    assert placed.status_code == 303, placed.text[:300]


@pytest.mark.parametrize("peer, forged, recorded", [
    (PROXY, BUYER, BUYER),  # the proxy says who the buyer is
    (NEIGHBOUR, BUYER, NEIGHBOUR),  # another container on the network: the header is ignored
    ("172.20.0.1", "198.51.100.1", None),  # the gateway (the engine's userland proxy) forging one: unknown
    (PROXY, "172.20.0.1", None),  # the proxy itself only saw the gateway: unknown, HQ's IP rules never fire
    (PROXY, "not-an-address", PROXY),
])
def test_only_the_proxy_may_name_the_buyers_address(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, peer: str,
                                                     forged: str, recorded: str | None) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)
    client, shop = _served(tmp_path, url, peer, monkeypatch)
    _order(client, **{"X-Forwarded-For": f"10.9.9.9, {forged}"})
    assert _recorded_address(url, shop) == recorded


def test_https_is_believed_only_from_the_proxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)
    for peer, hsts in ((PROXY, True), (NEIGHBOUR, False)):
        client, _ = _served(tmp_path / peer, url, peer, monkeypatch)
        page = client.get("/", headers={"X-Forwarded-Proto": "https"})
        assert ("strict-transport-security" in page.headers) is hsts, peer


def test_a_recreated_proxy_is_trusted_at_its_new_address_and_not_at_its_old_one() -> None:
    answers, now, asked = [{"172.20.0.4"}], [0.0], []

    def resolve(name: str) -> set[str]:
        asked.append(name)
        return answers[0]

    peers = TrustedPeers("127.0.0.1, 10.1.0.0/16, proxy", resolve=resolve, clock=lambda: now[0])
    trusts = lambda peer: _await(peers.trusts(peer))  # noqa: E731
    assert trusts("127.0.0.1") and trusts("10.1.2.3") and asked == []  # no lookup for a fixed address
    assert trusts("172.20.0.4") and asked == ["proxy"]
    assert not trusts("172.20.0.5") and not trusts("testclient") and not trusts(None)
    answers[0] = {"172.20.0.5"}
    assert not trusts("172.20.0.5") and asked == ["proxy"]  # not asked again before RESOLVE_EVERY: a flood costs no DNS
    now[0] += RESOLVE_EVERY
    assert trusts("172.20.0.5") and not trusts("172.20.0.4")


def test_a_slow_lookup_never_holds_requests_without_forwarding_headers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The health probe comes from loopback with no header while `proxy` does not resolve yet (it starts after the
    storefront is healthy): it is answered without any lookup."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)
    client, _ = _served(tmp_path, url, "127.0.0.1", monkeypatch)
    from storefront import forwarded

    def never(name: str) -> set[str]:
        raise AssertionError("looked up")

    monkeypatch.setattr(forwarded, "resolve_host", never)
    assert client.get("/healthz").status_code == 200


def test_by_default_only_loopback_may_forward() -> None:
    peers = TrustedPeers(StorefrontSettings(database_url="sqlite://").forwarded_allow_ips)
    assert _await(peers.trusts("127.0.0.1"))
    assert not any(_await(peers.trusts(a)) for a in ("10.0.0.2", "172.18.0.3", "192.168.1.4"))

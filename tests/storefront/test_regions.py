"""The buyer's region at checkout: from the address (offline database), else confirmed by the buyer; enforced.

Addresses from each case: inside the licence's regions (1.2.4.8, CN; 2400:da00::6666, CN), outside
(8.8.8.8, US), unknown (private, loopback), and a forwarded header from a peer that is not the proxy.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from sitedb.engine import make_engine
from sitedb.models import Order
from storefront import regions
from tests.storefront.http import NONCE, checkout, form_token
from tests.storefront.support import running_storefront, seed, update_site_state, write_site_files

pytestmark = pytest.mark.filterwarnings("ignore:.*httpx.*")

CN, CN6, US, PRIVATE = "1.2.4.8", "2400:da00::6666", "8.8.8.8", "10.1.2.3"


@pytest.mark.parametrize("address, region", [(CN, "CN"), (CN6, "CN"), (US, "US"), (PRIVATE, None), ("127.0.0.1", None),
                                             ("::1", None), ("testclient", None), (None, None), ("", None)])
def test_the_region_of_an_address_comes_from_the_offline_database(address, region):
    assert regions.detect(address) == region


def test_a_region_is_in_the_licence_when_it_or_its_country_is_listed():
    assert regions.allowed("CN", ["CN"]) and regions.allowed("CN-GD", ["CN"]) and regions.allowed("CN-GD", ["cn-gd"])
    assert not regions.allowed("US", ["CN"]) and not regions.allowed("CN", ["CN-GD"])
    assert regions.allowed("US", [])  # a licence without regions sets no limit


def test_a_detected_region_beats_the_form_and_unknown_needs_the_buyers_word():
    assert regions.buyer_region(US, "CN", ["CN"]) == regions.BuyerRegion("US", False)  # no talking one's way in
    assert regions.buyer_region(PRIVATE, "cn", ["CN"]) == regions.BuyerRegion("CN", True)
    with pytest.raises(regions.RegionNeeded):
        regions.buyer_region(PRIVATE, "", ["CN"])
    with pytest.raises(regions.RegionNeeded):
        regions.buyer_region(PRIVATE, "C N'; --", ["CN"])
    assert regions.buyer_region(PRIVATE, "", []) == regions.BuyerRegion(None, False)


def _app_from(tmp_path: Path, url: str, address: str, **overrides: str):  # type: ignore[no-untyped-def]
    from starlette.testclient import TestClient

    from storefront.app import create_app
    from storefront.settings import StorefrontSettings

    env = write_site_files(tmp_path / f"site-{address.replace(':', '_')}")
    settings = StorefrontSettings(**{"database_url": url, "site_config": env["KIT_SITE_CONFIG"],
                                     "secret_key_file": env["KIT_SECRET_KEY_FILE"], "site_key_file": env["KIT_SITE_KEY_FILE"],
                                     "branding_dir": env["KIT_BRANDING_DIR"], "state_cache_seconds": 0, **overrides})
    return TestClient(create_app(settings), base_url="http://testserver", follow_redirects=False, client=(address, 40000))


def _orders(url: str) -> list[tuple[str, str | None, int]]:
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = [(r.id, r.buyer_region, r.total_cents) for r in conn.execute(select(Order.id, Order.buyer_region, Order.total_cents))]
    engine.dispose()
    return rows


def _submit(client, sku: str = "G-QQ-100", **fields: str):  # type: ignore[no-untyped-def]
    page = client.get(f"/p/{sku}").text
    data = {"csrf": form_token(page), "nonce": form_token(page, NONCE), "quantity": "1", "contact": "13800138000",
            "password": "secret-pw", "password2": "secret-pw", **fields}
    return client.post(f"/p/{sku}/checkout", data=data)


@pytest.fixture
def cn_site(tmp_path):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)
    update_site_state(url, regions=["CN"])
    return url


def test_an_address_inside_the_licensed_regions_orders_and_the_order_carries_its_region(tmp_path, cn_site):
    for address in (CN, CN6):
        client = _app_from(tmp_path, cn_site, address)
        assert 'id="f-region"' not in client.get("/p/G-QQ-100").text  # nothing to ask: the address tells
        assert _submit(client).status_code == 303
    assert [region for _, region, _ in _orders(cn_site)] == ["CN", "CN"]


def test_an_address_outside_the_licensed_regions_is_refused_before_payment(tmp_path, cn_site):
    client = _app_from(tmp_path, cn_site, US)
    refused = _submit(client, region="CN")  # the form cannot override what the address says
    assert refused.status_code == 403 and "本店不向您所在的地区（US）销售" in refused.text
    assert _orders(cn_site) == []  # nothing written, no payment started


def test_an_unknown_address_asks_the_buyer_to_confirm_the_region(tmp_path, cn_site):
    client = _app_from(tmp_path, cn_site, PRIVATE)
    page = client.get("/p/G-QQ-100").text
    assert 'id="f-region"' in page and '<option value="CN" selected>中国大陆</option>' in page
    missing = _submit(client)
    assert missing.status_code == 422 and 'id="e-region"' in missing.text and _orders(cn_site) == []
    elsewhere = _submit(client, region="ZZ")
    assert elsewhere.status_code == 403 and _orders(cn_site) == []
    assert _submit(client, region="CN").status_code == 303
    assert [region for _, region, _ in _orders(cn_site)] == ["CN"]


def test_the_refusal_speaks_the_buyers_language_and_names_elsewhere_in_words(tmp_path, cn_site):
    client = _app_from(tmp_path, cn_site, US)
    client.cookies.set("kit_lang", "en")
    refused = _submit(client)
    assert refused.status_code == 403 and "This shop does not sell to your region (US)." in refused.text
    unknown = _app_from(tmp_path, cn_site, PRIVATE)
    other = _submit(unknown, region="ZZ")
    assert other.status_code == 403 and "本店不向您所在的地区（其他地区）销售" in other.text
    unknown.cookies.set("kit_lang", "en")
    assert "This shop does not sell to your region (Elsewhere)." in _submit(unknown, region="ZZ").text
    assert _orders(cn_site) == []


def test_a_region_limit_newer_than_the_pages_copy_still_needs_the_buyers_region(tmp_path):
    """The page read the licence before the agent stored its regions: the order's own transaction reads them."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)
    client = _app_from(tmp_path, url, PRIVATE, state_cache_seconds=3600)
    assert 'id="f-region"' not in client.get("/p/G-QQ-100").text  # no limit yet: nothing asked
    update_site_state(url, regions=["CN"])
    missing = _submit(client)
    assert missing.status_code == 422 and 'id="e-region"' in missing.text and _orders(url) == []
    assert _submit(client, region="CN").status_code == 303
    assert [region for _, region, _ in _orders(url)] == ["CN"]


def test_without_a_region_limit_nothing_is_asked_and_the_known_region_is_still_sent(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    seed(url)  # regions: [] (a site whose agent has not stored them yet)
    assert 'id="f-region"' not in _app_from(tmp_path, url, PRIVATE).get("/p/G-QQ-100").text
    assert _submit(_app_from(tmp_path, url, PRIVATE)).status_code == 303
    assert _submit(_app_from(tmp_path, url, US)).status_code == 303
    assert sorted(region or "-" for _, region, _ in _orders(url)) == ["-", "US"]


def test_the_regional_pricing_plugin_sees_the_buyers_region(tmp_path, cn_site):
    """A flagship site's rule: 5% off for buyers in CN; an order from CN gets it."""
    config = tmp_path / "plugins"
    config.mkdir()
    (config / "plugins.toml").write_text('disabled = []\n\n[[settings.regional-pricing.rules]]\nname = "cn-ten"\n'
                                         'regions = ["CN"]\npercent_off = 5\n')
    update_site_state(cn_site, tier="flagship", features=["storefront", "regional-pricing"], regions=["CN", "US"])
    for address in (CN, US):
        assert _submit(_app_from(tmp_path, cn_site, address, plugin_config_dir=str(config))).status_code == 303
    totals = {region: total for _, region, total in _orders(cn_site)}
    assert totals["US"] == 10422 and totals["CN"] == 10422 - 521  # the rule fired for CN only


def test_the_agent_takes_the_region_to_hq(tmp_path, cn_site):
    """HQ's region rules (block lists, orders outside the licence) see what the order carries."""
    from agent.outbox import order_payload
    from sitedb.buyer import BuyerBox
    from sitedb.engine import session_factory

    client = _app_from(tmp_path, cn_site, CN)
    assert _submit(client).status_code == 303
    key = client.app.app.state.shop.buyers
    engine = make_engine(cn_site)
    with session_factory(engine)() as s:
        order = s.scalars(select(Order)).one()
        assert order_payload(order, key)["buyer"]["region"] == "CN"
    engine.dispose()
    assert isinstance(key, BuyerBox)


@pytest.fixture(scope="module")
def servers(tmp_path_factory):  # type: ignore[no-untyped-def]
    """Two real servers on one database: one believes 127.0.0.1 as its proxy (the kit's default), one does not."""
    tmp = tmp_path_factory.mktemp("regions")
    url = f"sqlite:///{tmp / 's.db'}"
    seed(url)
    update_site_state(url, regions=["CN"])
    env = write_site_files(tmp / "site")
    env["KIT_MIGRATE_ON_START"] = "false"
    with running_storefront(url, env, tmp / "proxied.log") as proxied, \
            running_storefront(url, {**env, "KIT_FORWARDED_ALLOW_IPS": "10.9.9.9"}, tmp / "direct.log") as direct:
        yield url, proxied, direct


def test_through_the_proxy_the_forwarded_address_decides(servers):
    url, proxied, _ = servers
    with httpx.Client(base_url=proxied, timeout=30, headers={"X-Forwarded-For": CN}) as inside:
        assert checkout(inside, "G-QQ-100").status_code == 303
    with httpx.Client(base_url=proxied, timeout=30, headers={"X-Forwarded-For": f"{CN}, {US}"}) as outside:
        r = checkout(outside, "G-QQ-100", region="CN")  # the proxy's own entry (the last) is the client
        assert r.status_code == 403 and "（US）" in r.text
    assert sorted(region for _, region, _ in _orders(url)) == ["CN"]


def test_a_forwarded_header_from_anyone_but_the_proxy_is_ignored(servers):
    url, _, direct = servers
    before = len(_orders(url))
    with httpx.Client(base_url=direct, timeout=30, headers={"X-Forwarded-For": US}) as client:
        r = checkout(client, "G-QQ-100", region="")  # not refused as US: the header is not believed; the address is loopback
        assert r.status_code == 422 and 'id="e-region"' in r.text
        assert checkout(client, "G-QQ-100", region="CN").status_code == 303
    assert len(_orders(url)) == before + 1

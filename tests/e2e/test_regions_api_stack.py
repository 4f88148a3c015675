"""Regions and the reseller API on the real stack (issue 21): Caddy, the storefront, the agent and HQ in containers.

The session's shared kit stack (tests/e2e/conftest.py, `shared_stack`), whose licence limits regions to CN
(HQ's default). Buyers at chosen public addresses: a client container on a network of the test's own whose
subnet is a CN block or a US block (internal: nothing leaves the host), and the site's proxy joined to it.
Caddy sees the real peer address and forwards it; the storefront believes the header only from the proxy. So
nothing in the stack is configured for the test and nothing is trusted that is not trusted in production: a
buyer's own X-Forwarded-For is replaced by the proxy, which the US buyer's forged header shows.

The reseller API: HQ upgrades the licence to pro (api-access), the site's admin creates a key on the admin page,
the reseller orders twice with one Idempotency-Key, polls the order until delivered and reads its card key.
The module hands the stack on as it found it: basic tier, the proxy on its own network only.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any, Iterator

import httpx
import pytest

from kitctl.deploy.engine_exec import run_in
from tests.support.kit_stack import CSRF, SKU, Stack, serving_again
from tests.support.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

HQ_DIR = "/var/lib/kit/hq"
# the networks' blocks, and a buyer's address in each (iptocc: 36.110.0.0/16 CN, 3.0.0.0/9 US)
CN_NET, CN_BUYER = "36.110.1.0/29", "36.110.1.4"
US_NET, US_BUYER = "3.0.5.0/29", "3.0.5.4"
NEW_TOKEN = re.compile(r'id="new-token">([^<]+)<')
# a buyer's browser in a few lines of the standard library: the product page (CSRF cookie, form nonce), then
# the checkout form without following the redirect; prints what the buyer saw
BUYER = r"""
import http.cookiejar, json, re, sys, urllib.error, urllib.parse, urllib.request
base, sku, region, lang, forged = sys.argv[1:6]
class Stay(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None
opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), Stay)
def call(path, data=None, headers={}):
    request = urllib.request.Request(base + path, data=data, headers={"Host": "localhost", **headers})
    try:
        with opener.open(request, timeout=20) as r:
            return r.status, r.headers.get("Location"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Location"), e.read().decode()
_, _, page = call("/p/" + sku)
form = {"csrf": re.search(r'name="csrf" value="([^"]+)"', page).group(1),
        "nonce": re.search(r'name="nonce" value="([^"]+)"', page).group(1), "quantity": "1",
        "contact": "13800138000", "password": "order-pw-1", "password2": "order-pw-1"}
if region:
    form["region"] = region
status, location, body = call("/p/" + sku + "/checkout?lang=" + lang, urllib.parse.urlencode(form).encode(),
                              {"X-Forwarded-For": forged} if forged else {})
print(json.dumps({"asked": 'id="f-region"' in page, "status": status, "location": location, "body": body}))
"""
HQ_ORDER = """
import json, sys
from sqlalchemy import select
from hq.models import Order
from hq.service import HQ
from hq.settings import HQSettings
hq = HQ.open(HQSettings())
with hq.session() as s:
    row = s.execute(select(Order.buyer_region, Order.buyer_ip, Order.status)
                    .where(Order.site_id == sys.argv[1], Order.order_id == sys.argv[2])).first()
print(json.dumps(None if row is None else {"region": row[0], "ip": row[1], "status": row[2]}))
hq.close()
"""


@pytest.fixture(scope="module")
def stack(shared_stack: Stack) -> Iterator[Stack]:
    yield shared_stack
    serving_again(shared_stack)


@pytest.fixture(scope="module")
def buyer_networks(stack: Stack) -> Iterator[dict[str, tuple[str, str]]]:
    """{"CN": (network, proxy address on it), "US": …}: internal networks of the module's own, the proxy joined."""
    import docker

    run = uuid.uuid4().hex[:6]
    made: list[Any] = []
    try:
        for country, subnet in (("CN", CN_NET), ("US", US_NET)):
            ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)])
            made.append(stack.client.networks.create(f"kitctl-{stack.site_id}-{country.lower()}-{run}", driver="bridge",
                                                     internal=True, ipam=ipam, labels={"com.kitctl.test": stack.site_id}))
        proxy = stack.container("proxy")
        for network in made:
            network.connect(proxy)
        proxy.reload()
        joined = proxy.attrs["NetworkSettings"]["Networks"]
        yield {country: (n.name, joined[n.name]["IPAddress"]) for country, n in zip(("CN", "US"), made)}
    finally:
        for network in made:
            network.reload()
            for container in network.containers:
                network.disconnect(container, force=True)
            network.remove()


def buy_from(s: Stack, networks: dict[str, tuple[str, str]], country: str, address: str, region: str = "",
             lang: str = "zh-CN", forged: str = "") -> dict[str, Any]:
    """One checkout by a buyer at `address` on the `country` network, through the site's proxy."""
    network, proxy = networks[country]
    api = s.client.api
    created = api.create_container(
        f"kitctl/storefront:{s.tag}", ["python", "-c", BUYER, f"http://{proxy}", SKU, region, lang, forged],
        labels={"com.kitctl.test": s.site_id}, host_config=api.create_host_config(network_mode=network),
        networking_config=api.create_networking_config({network: api.create_endpoint_config(ipv4_address=address)}))
    try:
        api.start(created["Id"])
        assert api.wait(created["Id"], timeout=90)["StatusCode"] == 0, api.logs(created["Id"]).decode()[-1500:]
        return json.loads(api.logs(created["Id"], stderr=False).decode().strip().splitlines()[-1])
    finally:
        api.remove_container(created["Id"], force=True)


def in_hq(s: Stack, code: str, *args: str) -> Any:
    done = run_in(s.container("hq"), ["python", "-c", code, *args])
    assert done.exit_code == 0, done.stderr.decode()[-800:]
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


def site_orders(s: Stack) -> int:
    return int(s.psql("SELECT count(*) FROM orders")[0])


def test_a_buyer_inside_the_regions_reaches_hq_with_the_region_one_outside_is_refused_before_payment(
        stack: Stack, buyer_networks: dict[str, tuple[str, str]]) -> None:
    inside = buy_from(stack, buyer_networks, "CN", CN_BUYER)
    assert not inside["asked"] and inside["status"] == 303, inside["body"][-600:]  # the address tells: no question
    order = re.match(r"^/order/([A-Z0-9]+)", inside["location"]).group(1)  # type: ignore[union-attr]
    eventually(lambda: stack.psql(f"SELECT status, buyer_region FROM orders WHERE id = '{order}'") == ["delivered|CN"],
               90, 0.5, what="the CN buyer's order delivered")
    assert in_hq(stack, HQ_ORDER, stack.site_id, order) == {"region": "CN", "ip": CN_BUYER, "status": "delivered"}

    before = site_orders(stack)
    outside = buy_from(stack, buyer_networks, "US", US_BUYER, region="CN", forged=CN_BUYER)  # neither moves it
    assert outside["status"] == 403 and "本店不向您所在的地区（US）销售" in outside["body"], outside["body"][-600:]
    in_english = buy_from(stack, buyer_networks, "US", US_BUYER, lang="en")
    assert in_english["status"] == 403 and "This shop does not sell to your region (US)." in in_english["body"]
    assert site_orders(stack) == before  # no order row: nothing for the agent to forward, no payment started


def test_a_buyer_whose_address_tells_no_region_must_confirm_one(stack: Stack) -> None:
    """From the host the proxy sees the network's gateway (a private address): the form asks."""
    before = site_orders(stack)
    with httpx.Client(base_url=stack.base, timeout=10) as client:
        page = client.get(f"/p/{SKU}").text
        assert 'id="f-region"' in page
        nonce = re.search(r'name="nonce" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        missing = client.post(f"/p/{SKU}/checkout", data={
            "csrf": CSRF.search(page).group(1), "nonce": nonce, "quantity": "1",  # type: ignore[union-attr]
            "contact": "13800138000", "password": "order-pw-1", "password2": "order-pw-1"})
    assert missing.status_code == 422 and 'id="e-region"' in missing.text
    assert site_orders(stack) == before


@pytest.fixture
def pro(stack: Stack) -> Iterator[Stack]:
    """The site upgraded to pro at HQ (api-access) and back to basic after, each as the agent applies it."""
    def tier(name: str) -> None:
        done = run_in(stack.container("hq"), ["python", "-m", "kitctl", "hq", "licence", "upgrade", stack.site_id,
                                              "--tier", name, "--hq-dir", HQ_DIR])
        assert done.exit_code == 0, done.output.decode()[-800:]
        eventually(lambda: stack.psql("SELECT tier FROM site_state") == [name], 90, 0.5, what=f"the site at {name}")

    tier("pro")
    try:
        yield stack
    finally:
        tier("basic")


def test_an_order_through_the_reseller_api_is_delivered_with_its_card_key(pro: Stack) -> None:
    name = f"api-{uuid.uuid4().hex[:6]}"
    password = re.search(r"password (\S+)", pro.kitctl("admin", "create", name, "--role", "admin").stdout).group(1)  # type: ignore[union-attr]
    with httpx.Client(base_url=pro.base, timeout=10) as admin:
        token = CSRF.search(admin.get("/admin/login").text).group(1)  # type: ignore[union-attr]
        assert admin.post("/admin/login", data={"csrf": token, "username": name, "password": password}).status_code == 303
        page = eventually(lambda: (p := admin.get("/admin/api-keys").text) and 'id="api-key-form"' in p and p, 30, 0.5,
                          what="the key form (api-access)")
        made = admin.post("/admin/api-keys", data={"csrf": CSRF.search(page).group(1),  # type: ignore[union-attr]
                                                   "name": "downstream shop",
                                                   "scope": ["catalog:read", "orders:write", "orders:read"]})
        assert made.status_code == 200, made.text[-600:]
        key = NEW_TOKEN.search(made.text).group(1)  # type: ignore[union-attr]
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=f"{pro.base}/api/v1", timeout=10, headers=auth) as api:
        listed = {e["sku"]: e for e in api.get("/catalog").json()}
        assert listed[SKU]["price_cents"] > 0
        body = {"sku": SKU, "quantity": 1, "contact": "reseller@example.cn", "buyer_region": "CN"}
        first = api.post("/orders", json=body, headers={"Idempotency-Key": "e2e-order-0001"})
        assert first.status_code == 201, first.text
        again = api.post("/orders", json=body, headers={"Idempotency-Key": "e2e-order-0001"})
        assert again.status_code == 200 and again.json()["order_id"] == first.json()["order_id"]  # one order
        order = first.json()["order_id"]
        done = eventually(lambda: (r := api.get(f"/orders/{order}").json())["status"] == "delivered" and r, 90, 0.5,
                          what="the API order delivered")
        secrets = [k["secret"] for k in done["card_keys"]]
        assert len(secrets) == 1 and secrets[0]
        assert pro.psql(f"SELECT count(*) FROM orders WHERE id = '{order}'") == ["1"]
        assert in_hq(pro, HQ_ORDER, pro.site_id, order)["status"] == "delivered"

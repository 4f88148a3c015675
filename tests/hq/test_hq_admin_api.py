"""Admin endpoints (operator token): licences, catalog, card keys, reviews, sites, risk rules."""

from __future__ import annotations

import pytest

from hq.models import CardKey
from kitcore.licence.keys import load_jwks
from kitcore.licence.token import verify_licence
from tests.hq.helpers import auth, http, order, post_orders


def _admin(hq, method: str, path: str, **kw):
    return http.request(method, f"{hq.url}/v1/admin{path}", headers={**hq.admin_headers(), **kw.pop("headers", {})}, **kw)


def test_operator_token_required(sqlite_hq):
    assert http.get(f"{sqlite_hq.url}/v1/admin/licences").status_code == 401
    r = http.get(f"{sqlite_hq.url}/v1/admin/licences", headers=auth("hqop_wrong"))
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"


def test_licence_lifecycle_through_the_api(hq_server):
    keys = load_jwks(hq_server.keys_path)
    r = _admin(hq_server, "POST", "/licences", json={"site": "xingchen", "tier": "basic", "categories": ["game"], "days": 30})
    assert r.status_code == 200, r.text
    issued = r.json()
    claims = verify_licence(issued["token"], keys).claims
    assert (claims.sub, claims.tier, claims.categories, claims.hq_url) == ("xingchen", "basic", ["game"], hq_server.url)
    grant = claims.registry
    assert grant is not None and grant.username == "site-xingchen" and len(grant.password or "") >= 20
    assert hq_server.service.htpasswd.check("site-xingchen", grant.password)
    htpasswd = hq_server.hq_dir / "registry" / "htpasswd"
    assert (htpasswd.stat().st_mode & 0o777) == 0o600 and grant.password not in htpasswd.read_text()

    dup = _admin(hq_server, "POST", "/licences", json={"site": "xingchen", "categories": ["game"]})
    assert dup.status_code == 409 and dup.json()["error"] == "licence_exists"
    too_many = _admin(hq_server, "POST", "/licences", json={"site": "other", "tier": "basic",
                                                          "categories": ["game", "phone", "video"]})
    assert too_many.status_code == 422 and "at most 2" in too_many.json()["detail"]

    up = _admin(hq_server, "POST", "/licences/xingchen/upgrade", json={"tier": "pro", "categories": ["game", "phone"]})
    assert up.status_code == 200
    up_claims = verify_licence(up.json()["token"], keys).claims
    assert up_claims.tier == "pro" and "api-access" in up_claims.features and up_claims.registry == grant
    assert abs(up_claims.exp - claims.exp) < 86400 * 1.01
    renewed = verify_licence(_admin(hq_server, "POST", "/licences/xingchen/renew", json={"days": 365}).json()["token"], keys)
    assert renewed.claims.exp - up_claims.exp >= 364 * 86400
    assert _admin(hq_server, "POST", "/licences/xingchen/suspend", json={"reason": "late"}).json()["status"] == "suspended"
    assert _admin(hq_server, "POST", "/licences/xingchen/suspend", json={"reason": "again"}).status_code == 409
    assert _admin(hq_server, "POST", "/licences/xingchen/resume").json()["status"] == "active"
    rev = _admin(hq_server, "POST", "/licences/xingchen/revoke", json={"reason": "fraud"})
    assert rev.json()["status"] == "revoked" and rev.json()["reason"] == "fraud"
    assert not hq_server.service.htpasswd.check("site-xingchen", grant.password)
    assert "site-xingchen" not in htpasswd.read_text()
    assert _admin(hq_server, "POST", "/licences/nosuch/revoke", json={"reason": "x"}).status_code == 404
    assert _admin(hq_server, "POST", "/licences/xingchen/revoke", json={}).status_code == 422

    listed = _admin(hq_server, "GET", "/licences").json()
    assert [(l["site"], l["status"], l["tier"]) for l in listed] == [("xingchen", "revoked", "pro")]
    actions = [e["action"] for e in _admin(hq_server, "GET", "/audit", params={"site": "xingchen"}).json()]
    assert actions == ["licence.revoke", "licence.resume", "licence.suspend", "licence.renew", "licence.upgrade",
                       "licence.issue"]
    assert all(e["operator"] == "tester" for e in _admin(hq_server, "GET", "/audit").json() if e["site"])

    # a revoked site can be re-admitted with a fresh licence and new registry credentials
    again = _admin(hq_server, "POST", "/licences", json={"site": "xingchen", "categories": ["game"]})
    assert again.status_code == 200
    new_grant = verify_licence(again.json()["token"], keys).claims.registry
    assert new_grant.password != grant.password and hq_server.service.htpasswd.check("site-xingchen", new_grant.password)


def test_catalog_and_card_key_admin(hq_server):
    item = {"name": "王者荣耀 100 点券", "category": "game", "face_value_cents": 1000, "price_cents": 950}
    r = _admin(hq_server, "PUT", "/catalog/items/wz-100", json=item)
    assert r.status_code == 200 and r.json()["stock"] == 0 and r.json()["version"] >= 1
    assert _admin(hq_server, "PUT", "/catalog/items/x", json={**item, "category": "nope"}).status_code == 422
    assert _admin(hq_server, "PUT", "/catalog/items/x", json={**item, "min_qty": 5, "max_qty": 2}).status_code == 422
    assert _admin(hq_server, "PUT", "/catalog/items/bad%20sku", json=item).status_code == 422
    csv_body = "sku,serial,secret\nwz-100,S-1,SECRET-AAA\nwz-100,S-2,SECRET-BBB\n"
    r = _admin(hq_server, "POST", "/catalog/card-keys", content=csv_body.encode(), headers={"content-type": "text/csv"})
    assert r.json() == {"added": 2, "skipped": 0, "skus": ["wz-100"]}
    r = _admin(hq_server, "POST", "/catalog/card-keys", content=csv_body.encode(), headers={"content-type": "text/csv"})
    assert r.json()["skipped"] == 2
    for bad, status, code in (("serial,secret\nx,y\n", 422, "invalid_request"),
                              ("sku,serial,secret\nnope,S,T\n", 404, "not_found"),
                              ("sku,serial,secret\nwz-100,S-3\n", 422, "invalid_request")):
        r = _admin(hq_server, "POST", "/catalog/card-keys", content=bad.encode(), headers={"content-type": "text/csv"})
        assert r.status_code == status and r.json()["error"] == code, r.text
    # secrets are encrypted at rest
    with hq_server.service.session() as s:
        stored = [k.secret_enc for k in s.query(CardKey).all()]
    assert len(stored) == 2 and not any("SECRET" in v for v in stored)
    assert (hq_server.hq_dir / "vault.key").stat().st_mode & 0o777 == 0o600
    items = _admin(hq_server, "GET", "/catalog/items").json()
    assert [(i["sku"], i["stock"]) for i in items] == [("wz-100", 2)]
    assert _admin(hq_server, "DELETE", "/catalog/items/wz-100").json() == {"sku": "wz-100", "deleted": True,
                                                                           "version": items[0]["version"] + 1}
    assert _admin(hq_server, "DELETE", "/catalog/items/wz-100").status_code == 404


def test_review_queue_resolution(hq_server):
    hq_server.seed_item("game-100")
    keys = hq_server.seed_card_keys("game-100", 2)
    token = hq_server.issue_licence("xingchen")
    big = post_orders(hq_server, token, "k1", [order("o-big", unit_price_cents=150_000), order("o-big2", unit_price_cents=150_000)])
    assert [r["status"] for r in big.json()["results"]] == ["review", "review"]
    assert big.json()["results"][0]["delivery"] is None
    queue = _admin(hq_server, "GET", "/reviews").json()
    assert [q["order_id"] for q in queue] == ["o-big", "o-big2"] and queue[0]["reasons"] == ["amount_over:100000", "new_site_amount:50000"]
    first, second = queue
    r = _admin(hq_server, "POST", f"/reviews/{first['hq_order_id']}/resolve", json={"decision": "approve", "note": "ok"})
    assert r.json()["status"] == "delivered"
    assert _admin(hq_server, "POST", f"/reviews/{first['hq_order_id']}/resolve", json={"decision": "reject"}).status_code == 409
    _admin(hq_server, "POST", f"/reviews/{second['hq_order_id']}/resolve", json={"decision": "reject"})
    got = http.get(f"{hq_server.url}/v1/orders/o-big", headers=auth(token)).json()
    assert got["status"] == "delivered" and got["delivery"]["card_keys"][0] in keys
    assert got["reasons"] == ["amount_over:100000", "new_site_amount:50000", "operator:approve"]
    assert http.get(f"{hq_server.url}/v1/orders/o-big2", headers=auth(token)).json()["status"] == "rejected"
    assert _admin(hq_server, "GET", "/reviews").json() == []
    assert _admin(hq_server, "POST", "/reviews/hq_00/resolve", json={"decision": "approve"}).status_code == 404


def test_sites_sync_and_risk_rules(hq_server):
    token = hq_server.issue_licence("xingchen")
    http.post(f"{hq_server.url}/v1/heartbeat", headers=auth(token), json={"version": "1.2.3", "applied_seq": 0})
    sites = _admin(hq_server, "GET", "/sites").json()
    assert sites[0]["site"] == "xingchen" and sites[0]["version"] == "1.2.3" and sites[0]["online"] is True
    assert _admin(hq_server, "POST", "/sites/xingchen/sync").json() == {"site": "xingchen", "seq": 1, "type": "sync_now"}
    assert _admin(hq_server, "POST", "/sites/ghost/sync").status_code == 404
    rules = _admin(hq_server, "GET", "/risk-rules").json()
    rules["block"]["contacts"] = ["fraud@example.cn"]
    assert _admin(hq_server, "PUT", "/risk-rules", json=rules).status_code == 200
    assert "fraud@example.cn" in (hq_server.hq_dir / "risk-rules.json").read_text()
    bad = _admin(hq_server, "PUT", "/risk-rules", json={**rules, "block": {"ips": ["not-an-ip"]}})
    assert bad.status_code == 422
    assert _admin(hq_server, "GET", "/risk-rules").json()["block"]["contacts"] == ["fraud@example.cn"]


@pytest.mark.parametrize("path", ["/fleet", "/openapi.json", "/healthz"])
def test_public_pages_answer(sqlite_hq, path):
    r = http.get(f"{sqlite_hq.url}{path}", follow_redirects=False)
    assert r.status_code in (200, 303)

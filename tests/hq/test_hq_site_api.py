"""Site endpoints over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from hq import catalog
from hq.clock import utcnow
from hq.models import CatalogItem, IdempotencyKey
from kitcore.licence import jws
from kitcore.licence.keys import load_jwks
from kitcore.licence.token import issue_licence, verify_licence
from tests.hq.helpers import auth, http, order, post_orders


def test_keys_endpoint_publishes_the_pinnable_jwks(hq_server):
    r = http.get(f"{hq_server.url}/v1/keys")
    assert r.status_code == 200
    assert r.json() == hq_server.jwks and load_jwks(r.json()).by_kid
    token = hq_server.issue_licence("xingchen")
    assert verify_licence(token, load_jwks(r.json())).claims.sub == "xingchen"


def test_catalog_feed_pages_filters_tombstones_and_etag(hq_server):
    for i in range(5):
        hq_server.seed_item(f"game-{i}", category="game")
    hq_server.seed_item("phone-1", category="phone", stock_kind="direct_topup", account_pattern=r"^1\d{10}$")
    hq_server.seed_item("video-1", category="video")
    hq_server.seed_card_keys("game-0", 3)
    h = auth(hq_server.issue_licence("xingchen", categories=["game", "phone"]))

    seen, cursor, pages = {}, None, 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        r = http.get(f"{hq_server.url}/v1/catalog", headers=h, params=params)
        assert r.status_code == 200 and r.headers["etag"]
        page = r.json()
        pages += 1
        for item in page["items"]:
            seen[item["sku"]] = item
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert pages == 4
    assert {s for s, i in seen.items() if not i["deleted"]} == {f"game-{i}" for i in range(5)} | {"phone-1"}
    assert seen["video-1"] == {"sku": "video-1", "version": seen["video-1"]["version"], "deleted": True}
    assert seen["game-0"]["stock"] == 3 and seen["phone-1"]["stock"] is None
    assert seen["phone-1"]["account_pattern"] == r"^1\d{10}$"

    # nothing new: same ETag -> 304; a change -> 200 with just the change
    r = http.get(f"{hq_server.url}/v1/catalog", headers=h, params={"cursor": cursor})
    assert r.json()["items"] == []
    r304 = http.get(f"{hq_server.url}/v1/catalog", headers={**h, "If-None-Match": r.headers["etag"]},
                     params={"cursor": cursor})
    assert r304.status_code == 304 and r304.content == b""
    catalog.remove(hq_server.service, "test", "game-3")
    r = http.get(f"{hq_server.url}/v1/catalog", headers={**h, "If-None-Match": r.headers["etag"]},
                  params={"cursor": cursor})
    assert r.status_code == 200
    assert [(i["sku"], i["deleted"]) for i in r.json()["items"]] == [("game-3", True)]


def test_catalog_cursor_errors(hq_server):
    hq_server.seed_item("game-1")
    h = auth(hq_server.issue_licence("xingchen"))
    first = http.get(f"{hq_server.url}/v1/catalog", headers=h).json()["next_cursor"]
    hq_server.seed_item("game-2")
    catalog.remove(hq_server.service, "test", "game-2")
    # age the tombstone past retention and prune: a cursor from before it can no longer see that deletion
    with hq_server.service.session() as s:
        s.execute(update(CatalogItem).where(CatalogItem.sku == "game-2").values(updated_at=utcnow() - timedelta(days=40)))
    assert catalog.prune(hq_server.service) == 1
    r = http.get(f"{hq_server.url}/v1/catalog", headers=h, params={"cursor": first})
    assert r.status_code == 410 and r.json()["error"] == "cursor_expired"
    assert http.get(f"{hq_server.url}/v1/catalog", headers=h).status_code == 200  # full resync works
    r = http.get(f"{hq_server.url}/v1/catalog", headers=h, params={"cursor": "not-a-cursor"})
    assert r.status_code == 410 and r.json()["error"] == "cursor_expired"  # HQ cannot continue from it: resync
    r = http.get(f"{hq_server.url}/v1/catalog", headers=h, params={"cursor": "not a cursor"})
    assert r.status_code == 422 and r.json()["error"] == "invalid_request" and "cursor" in r.json()["detail"]
    other_db = catalog.encode_cursor("someotherhq", 1)
    assert http.get(f"{hq_server.url}/v1/catalog", headers=h, params={"cursor": other_db}).status_code == 410
    assert http.get(f"{hq_server.url}/v1/catalog", headers=h, params={"limit": 0}).status_code == 422


def test_full_resync_after_a_prune_pages_through_without_410(hq_server):
    """A chain begun from scratch misses no deletion: its cursors stay valid below the prune point."""
    for n in range(5):
        hq_server.seed_item(f"game-{n}")
    h = auth(hq_server.issue_licence("xingchen"))
    stale = http.get(f"{hq_server.url}/v1/catalog", headers=h, params={"limit": 1}).json()["next_cursor"]
    hq_server.seed_item("game-x")
    catalog.remove(hq_server.service, "test", "game-x")
    with hq_server.service.session() as s:
        s.execute(update(CatalogItem).where(CatalogItem.sku == "game-x").values(updated_at=utcnow() - timedelta(days=40)))
    assert catalog.prune(hq_server.service) == 1
    assert http.get(f"{hq_server.url}/v1/catalog", headers=h, params={"cursor": stale}).status_code == 410
    seen, cursor, pages = [], None, 0
    while True:  # the resync, one item a page, all of it below the prune point
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        r = http.get(f"{hq_server.url}/v1/catalog", headers=h, params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        seen += [i["sku"] for i in page["items"] if not i["deleted"]]
        cursor, pages = page["next_cursor"], pages + 1
        if not page["has_more"]:
            break
    assert sorted(seen) == [f"game-{n}" for n in range(5)] and pages >= 5


def test_order_approve_delivers_keys_and_replays(hq_server):
    hq_server.seed_item("game-100")
    keys = hq_server.seed_card_keys("game-100", 3)
    token = hq_server.issue_licence("xingchen")
    body = [order("o-1", quantity=2)]
    r = post_orders(hq_server, token, "batch-1", body)
    assert r.status_code == 200 and "idempotent-replayed" not in r.headers
    res = r.json()["results"][0]
    assert (res["decision"], res["status"], res["replayed"]) == ("approve", "delivered", False)
    delivered = res["delivery"]["card_keys"]
    assert len(delivered) == 2 and all(k in keys for k in delivered)

    again = post_orders(hq_server, token, "batch-1", body)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["results"][0] == {**res, "replayed": True}
    # the same order in another batch: first decision, marked replayed, no new keys
    other = post_orders(hq_server, token, "batch-2", body + [order("o-2")])
    assert "idempotent-replayed" not in other.headers
    first, second = other.json()["results"]
    assert first == {**res, "replayed": True} and second["replayed"] is False
    assert second["delivery"]["card_keys"][0] not in delivered
    got = http.get(f"{hq_server.url}/v1/orders/o-1", headers=auth(token))
    assert got.status_code == 200 and got.json() == {**res, "replayed": False}
    assert http.get(f"{hq_server.url}/v1/orders/nope", headers=auth(token)).status_code == 404
    out = post_orders(hq_server, token, "batch-3", [order("o-3", quantity=1)])
    assert out.json()["results"][0]["reasons"] == ["out_of_stock"]


def test_idempotency_conflicts_and_in_flight(hq_server):
    hq_server.seed_item("game-100")
    hq_server.seed_card_keys("game-100", 2)
    token = hq_server.issue_licence("xingchen")
    assert post_orders(hq_server, token, "k1", [order("o-1")]).status_code == 200
    r = post_orders(hq_server, token, "k1", [order("o-1", quantity=2)])
    assert r.status_code == 422 and r.json()["error"] == "idempotency_conflict"
    r = post_orders(hq_server, token, "k2", [order("o-1", unit_price_cents=1)])
    assert r.status_code == 422 and r.json()["error"] == "idempotency_conflict"
    r = post_orders(hq_server, token, "k3", [order("o-9"), order("o-9")])
    assert r.status_code == 422
    # a first request still being processed holds the key: 409, nothing created
    with hq_server.service.session() as s:
        s.add(IdempotencyKey(site_id="xingchen", key="busy", request_sha256="x" * 64, state="in_flight",
                             created_at=utcnow(), expires_at=utcnow() + timedelta(days=7)))
    r = post_orders(hq_server, token, "busy", [order("o-5")])
    assert r.status_code == 422  # a different body is refused before in-flight is considered
    from hq.orders import batch_hash
    from hq.schemas import OrderBatch

    payload = [order("o-5")]
    with hq_server.service.session() as s:
        row = s.get(IdempotencyKey, ("xingchen", "busy"))
        row.request_sha256 = batch_hash(OrderBatch.model_validate({"orders": payload}))
    r = post_orders(hq_server, token, "busy", payload)
    assert r.status_code == 409 and r.json()["error"] == "idempotency_in_flight"
    assert http.get(f"{hq_server.url}/v1/orders/o-5", headers=auth(token)).status_code == 404
    # keys are kept at least 7 days
    with hq_server.service.session() as s:
        row = s.get(IdempotencyKey, ("xingchen", "k1"))
        assert row.expires_at.replace(tzinfo=None) - row.created_at.replace(tzinfo=None) >= timedelta(days=7)
    r = http.post(f"{hq_server.url}/v1/orders", headers=auth(token), json={"orders": [order("o-6")]})
    assert r.status_code == 422 and "Idempotency-Key" in r.json()["detail"]


def test_orders_rejected_for_catalog_reasons(hq_server):
    hq_server.seed_item("game-100", max_qty=3)
    hq_server.seed_item("video-1", category="video")
    hq_server.seed_item("phone-50", category="game", stock_kind="direct_topup", account_pattern=r"^1\d{10}$")
    hq_server.seed_card_keys("game-100", 5)
    token = hq_server.issue_licence("xingchen")
    r = post_orders(hq_server, token, "k", [
        order("a", sku="nope"), order("b", sku="video-1"), order("c", quantity=4),
        order("d", sku="phone-50", account="13800138000"), order("e", sku="phone-50", account="bad"),
    ]).json()["results"]
    assert [x["reasons"] for x in r] == [["unknown_sku"], ["category_not_licensed"], ["quantity_out_of_range:1-3"],
                                         [], ["account_mismatch"]]
    assert r[3]["status"] == "delivered" and r[3]["delivery"] == {"card_keys": []}


def test_heartbeat_commands_are_signed_sequenced_and_acknowledged(hq_server):
    from hq import licences, sites

    token = hq_server.issue_licence("xingchen", tier="basic")
    keys = load_jwks(hq_server.keys_path)
    beat = {"version": "0.1.0", "applied_seq": 0, "health": {"db": "ok"}, "counters": {"orders_total": 3}}
    r = http.post(f"{hq_server.url}/v1/heartbeat", headers=auth(token), json=beat)
    assert r.status_code == 200
    body = r.json()
    assert body["commands"] == [] and body["licence"] == {"status": "active", "reason": None}
    assert body["interval_seconds"] == 30 and abs(body["server_time"] - utcnow().timestamp()) < 5

    upgraded = licences.upgrade(hq_server.service, "test", "xingchen", tier="pro")
    sites.sync_now(hq_server.service, "test", "xingchen")
    licences.suspend(hq_server.service, "test", "xingchen", "late payment")
    cmds = http.post(f"{hq_server.url}/v1/heartbeat", headers=auth(token), json=beat).json()
    payloads = [jws.verify(c, keys, typ="kitctl-command+jwt") for c in cmds["commands"]]
    assert [(p["seq"], p["type"]) for p in payloads] == [(1, "licence"), (2, "sync_now"), (3, "suspend")]
    assert all(p["site"] == "xingchen" and p["exp"] > p["iat"] for p in payloads)
    assert payloads[0]["payload"]["token"] == upgraded["token"]
    assert verify_licence(payloads[0]["payload"]["token"], keys).claims.tier == "pro"
    assert payloads[2]["payload"] == {"reason": "late payment"}
    assert cmds["licence"] == {"status": "suspended", "reason": "late payment"}
    with pytest.raises(Exception):  # a command is never a licence
        verify_licence(cmds["commands"][0], keys)

    acked = http.post(f"{hq_server.url}/v1/heartbeat", headers=auth(token), json={**beat, "applied_seq": 2}).json()
    assert [jws.verify(c, keys, typ="kitctl-command+jwt")["seq"] for c in acked["commands"]] == [3]
    fleet = {s["site"]: s for s in sites.fleet(hq_server.service)}["xingchen"]
    assert (fleet["applied_seq"], fleet["version"], fleet["health"]) == (2, "0.1.0", {"db": "ok"})
    # the old token still works for a heartbeat until the site switches to the new one
    new = http.post(f"{hq_server.url}/v1/heartbeat", headers=auth(upgraded["token"]), json={**beat, "applied_seq": 3})
    assert new.json()["commands"] == []


def test_revoke_gives_403_with_reason_but_heartbeat_still_answers(hq_server):
    from hq import licences

    hq_server.seed_item("game-100")
    token = hq_server.issue_licence("xingchen")
    licences.suspend(hq_server.service, "test", "xingchen", "audit pending")
    r = post_orders(hq_server, token, "k", [order("o-1")])
    assert r.status_code == 403 and r.json() == {"error": "licence_suspended", "detail": "licence suspended: audit pending"}
    assert http.get(f"{hq_server.url}/v1/catalog", headers=auth(token)).status_code == 200
    licences.resume(hq_server.service, "test", "xingchen")
    assert post_orders(hq_server, token, "k", [order("o-1")]).status_code == 200
    licences.revoke(hq_server.service, "test", "xingchen", "contract ended")
    for resp in (http.get(f"{hq_server.url}/v1/catalog", headers=auth(token)),
                 post_orders(hq_server, token, "k2", [order("o-2")]),
                 http.get(f"{hq_server.url}/v1/orders/o-1", headers=auth(token))):
        assert resp.status_code == 403
        assert resp.json() == {"error": "licence_revoked", "detail": "licence revoked: contract ended"}
    hb = http.post(f"{hq_server.url}/v1/heartbeat", headers=auth(token), json={"version": "1", "applied_seq": 0})
    assert hb.status_code == 200 and hb.json()["licence"] == {"status": "revoked", "reason": "contract ended"}
    revoke_cmd = jws.verify(hb.json()["commands"][-1], hq_server.service.pinned(), typ="kitctl-command+jwt")
    assert revoke_cmd["type"] == "revoke" and revoke_cmd["payload"] == {"reason": "contract ended"}


def test_site_authentication_failures(hq_server):
    url = f"{hq_server.url}/v1/catalog"
    assert http.get(url).json()["error"] == "unauthorized"
    assert http.get(url, headers=auth("garbage")).status_code == 401
    token = hq_server.issue_licence("xingchen")
    tampered = token[:-4] + ("AAAA" if token[-4:] != "AAAA" else "BBBB")
    r = http.get(url, headers=auth(tampered))
    assert r.status_code == 401 and r.json()["error"] == "invalid_licence"
    # signed by HQ's key but never recorded by the licence authority: unknown
    stray = issue_licence(hq_server.service.keys, site="ghost", tier="basic", categories=["game"], days=30,
                          hq_url=hq_server.url)
    r = http.get(url, headers=auth(stray))
    assert r.status_code == 401 and r.json()["error"] == "unknown_licence"
    assert http.get(f"{hq_server.url}/v1/admin/sites", headers=auth(token)).status_code == 401


def test_bad_bodies_get_one_line_422(sqlite_hq):
    token = sqlite_hq.issue_licence("xingchen")
    h = {**auth(token), "Idempotency-Key": "k"}
    for body in ({"orders": []}, {"orders": [{"order_id": "x"}]}, {"nope": 1}, [1, 2]):
        r = http.post(f"{sqlite_hq.url}/v1/orders", headers=h, json=body)
        assert r.status_code == 422 and r.json()["error"] == "invalid_request" and "\n" not in r.json()["detail"]
    r = http.post(f"{sqlite_hq.url}/v1/orders", headers={**h, "content-type": "application/json"}, content=b"{not json")
    assert r.status_code == 422
    r = http.post(f"{sqlite_hq.url}/v1/heartbeat", headers=auth(token), json={"version": "1", "applied_seq": -1})
    assert r.status_code == 422


def test_rate_limit_per_site(tmp_path):
    from hq.testing import running_hq

    with running_hq(tmp_path, site_rate_per_second=0.1, site_rate_burst=3) as hq:
        a, b = hq.issue_licence("site-a"), hq.issue_licence("site-b")
        codes = [http.get(f"{hq.url}/v1/catalog", headers=auth(a)).status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and codes[-1] == 429
        r = http.get(f"{hq.url}/v1/catalog", headers=auth(a))
        assert r.json()["error"] == "rate_limited" and int(r.headers["retry-after"]) >= 1
        assert http.get(f"{hq.url}/v1/catalog", headers=auth(b)).status_code == 200


def test_expired_site_still_gets_heartbeat_answers_and_renewal(sqlite_hq):
    from hq import licences
    from hq.models import Licence

    token = sqlite_hq.issue_licence("xingchen", days=1)
    # move the licence two months into the past: beyond grace, yet the heartbeat must still reach it
    old = issue_licence(sqlite_hq.service.keys, site="xingchen", tier="pro", categories=["game"], days=30,
                        hq_url=sqlite_hq.url, now=int(utcnow().timestamp()) - 60 * 86400, jti="old-jti")
    with sqlite_hq.service.session() as s:
        lic = s.get(Licence, verify_licence(token, sqlite_hq.service.pinned()).claims.jti)
        s.add(Licence(jti="old-jti", site_id="xingchen", tier="pro", features=[], categories=["game"], regions=["CN"],
                      revenue_share_bps=0, issued_at=lic.issued_at, expires_at=utcnow() - timedelta(days=30),
                      issued_by="test", token_sha256="x"))
        s.flush()
        from hq.models import Site

        s.get(Site, "xingchen").current_jti = "old-jti"
    assert http.get(f"{sqlite_hq.url}/v1/catalog", headers=auth(old)).status_code == 401
    hb = http.post(f"{sqlite_hq.url}/v1/heartbeat", headers=auth(old), json={"version": "1", "applied_seq": 0})
    assert hb.status_code == 200 and hb.json()["licence"]["status"] == "expired"
    licences.renew(sqlite_hq.service, "test", "xingchen", 365)
    hb = http.post(f"{sqlite_hq.url}/v1/heartbeat", headers=auth(old), json={"version": "1", "applied_seq": 0}).json()
    cmd = jws.verify(hb["commands"][0], sqlite_hq.service.pinned(), typ="kitctl-command+jwt")
    assert cmd["type"] == "licence" and verify_licence(cmd["payload"]["token"], sqlite_hq.service.pinned()).days_left >= 364
    assert hb["licence"]["status"] == "active"


@pytest.mark.postgres
def test_catalog_stock_counts_use_the_card_key_index_when_keys_are_concentrated(tmp_path, hq_pg_server, hq_pg_template):
    """Statistics saying "all keys belong to one SKU" must not turn each page into scans of every key."""
    import psycopg

    from hq.testing import running_hq
    from tests.hq import pg

    with pg.fresh_database(hq_pg_server, template=hq_pg_template) as url, running_hq(tmp_path, database_url=url) as hq:
        for i in range(120):
            hq.seed_item(f"game-{i}")
        hq.seed_card_keys("game-0", 3000)
        with psycopg.connect(pg.plain(url), autocommit=True) as conn:
            conn.execute("ANALYZE card_keys")
            _, _, stock_sql, _ = catalog._feed_sql(True)
            compiled = stock_sql.compile(dialect=hq.service.engine.dialect)
            plan = conn.execute("EXPLAIN (FORMAT JSON) " + str(compiled),
                                {**compiled.params, "skus": ",".join(f"game-{i}" for i in range(1, 101))}).fetchone()[0]
        # the planner sees which SKUs are counted: it expects the few keys they have, not all 3,000
        scans = list(_plan_nodes(plan[0]["Plan"], "card_keys"))
        assert scans and all(n["Plan Rows"] < 100 for n in scans), scans
        page = http.get(f"{hq.url}/v1/catalog", headers=auth(hq.issue_licence("xingchen")), params={"limit": 1000}).json()
        stock = {i["sku"]: i["stock"] for i in page["items"]}
        assert stock["game-0"] == 3000 and stock["game-1"] == 0 and len(stock) == 120


def _plan_nodes(node, relation):  # type: ignore[no-untyped-def]
    if node.get("Relation Name") == relation:
        yield node
    for child in node.get("Plans", []):
        yield from _plan_nodes(child, relation)

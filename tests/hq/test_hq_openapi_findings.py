"""The 11 places schemathesis found HQ's schema and server disagreeing (issue 25), each pinned down.

Each test checks both sides: what /openapi.json says about the request
(validated with jsonschema, as a client generated from the schema would) and
what the server answers.
"""

from __future__ import annotations

from typing import Any, Iterator

import jsonschema
import pytest

from hq.testing import RunningHQ, running_hq
from tests.hq.helpers import auth, http, order


@pytest.fixture(scope="module")
def hq(tmp_path_factory) -> Iterator[RunningHQ]:
    with running_hq(tmp_path_factory.mktemp("findings"), registry_url="") as server:
        server.seed_item("game-100")
        server.seed_card_keys("game-100", 5)
        server.site_token = server.issue_licence("fuzz-site")  # type: ignore[attr-defined]
        yield server


@pytest.fixture(scope="module")
def openapi(hq: RunningHQ) -> dict[str, Any]:
    return http.get(f"{hq.url}/openapi.json").json()  # type: ignore[no-any-return]


def body_valid(openapi: dict[str, Any], method: str, path: str, body: Any, media: str = "application/json") -> bool:
    """Whether `body` is valid for the operation's request body, as the schema says (formats checked)."""
    schema = openapi["paths"][path][method.lower()]["requestBody"]["content"][media]["schema"]
    validator = jsonschema.Draft202012Validator({**schema, "components": openapi["components"]},
                                                format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    return validator.is_valid(body)


def query_valid(openapi: dict[str, Any], path: str, name: str, value: str) -> bool:
    params = openapi["paths"][path]["get"]["parameters"]
    schema = next(p["schema"] for p in params if p["name"] == name)
    schema = next((s for s in schema.get("anyOf", []) if s.get("type") == "string"), schema)
    return jsonschema.Draft202012Validator(schema).is_valid(value)


def admin(hq: RunningHQ, method: str, path: str, **kwargs: Any) -> Any:
    return http.request(method, f"{hq.url}/v1/admin{path}", headers={**hq.admin_headers(), **kwargs.pop("headers", {})},
                        **kwargs)


# -- with a licence token ------------------------------------------------------------------------------------

def test_1_catalog_long_schema_valid_cursor_is_a_resync_not_a_400(hq, openapi):
    long_cursor = "0" * 200
    assert query_valid(openapi, "/v1/catalog", "cursor", long_cursor)
    r = http.get(f"{hq.url}/v1/catalog", headers=auth(hq.site_token), params={"cursor": long_cursor})
    assert r.status_code == 410 and r.json()["error"] == "cursor_expired"  # documented: resync from no cursor
    assert "410" in openapi["paths"]["/v1/catalog"]["get"]["responses"]
    too_long = "0" * 201
    assert not query_valid(openapi, "/v1/catalog", "cursor", too_long)
    r = http.get(f"{hq.url}/v1/catalog", headers=auth(hq.site_token), params={"cursor": too_long})
    assert r.status_code == 422 and r.json()["detail"].startswith("cursor")


def test_2_order_with_zero_price_and_zero_ids_is_decided(hq, openapi):
    zero = order("0", sku="0", unit_price_cents=0)
    assert body_valid(openapi, "POST", "/v1/orders", {"orders": [zero]})
    r = http.post(f"{hq.url}/v1/orders", headers={**auth(hq.site_token), "Idempotency-Key": "zero-1"},
                  json={"orders": [zero]})
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["decision"] == "reject" and r.json()["results"][0]["reasons"] == ["unknown_sku"]
    # the same order_id with another body is a documented conflict, never a validation error
    r = http.post(f"{hq.url}/v1/orders", headers={**auth(hq.site_token), "Idempotency-Key": "zero-2"},
                  json={"orders": [{**zero, "quantity": 2}]})
    assert r.status_code == 422 and r.json()["error"] == "idempotency_conflict"
    assert "idempotency_conflict" in openapi["paths"]["/v1/orders"]["post"]["responses"]["422"]["description"]


@pytest.mark.parametrize("applied_seq", [False, True, 1.5, "1"])
def test_3_heartbeat_refuses_a_boolean_or_other_non_integer_applied_seq(hq, openapi, applied_seq):
    beat = {"version": "0.1.0", "applied_seq": applied_seq, "health": {}, "counters": {}}
    assert not body_valid(openapi, "POST", "/v1/heartbeat", beat)
    r = http.post(f"{hq.url}/v1/heartbeat", headers=auth(hq.site_token), json=beat)
    assert r.status_code == 422 and r.json()["error"] == "invalid_request"
    assert r.json()["detail"].startswith("applied_seq")


def test_3b_heartbeat_takes_the_json_schema_integer_2_0(hq, openapi):
    beat = {"version": "0.1.0", "applied_seq": 2.0}
    assert body_valid(openapi, "POST", "/v1/heartbeat", beat)
    assert http.post(f"{hq.url}/v1/heartbeat", headers=auth(hq.site_token), json=beat).status_code == 200


# -- with an operator token ----------------------------------------------------------------------------------

def test_4_card_key_csv_schema_says_what_the_server_takes(hq, openapi):
    path = "/v1/admin/catalog/card-keys"
    assert not body_valid(openapi, "POST", path, "", media="text/csv")  # the finding: "" was schema-valid
    r = admin(hq, "POST", "/catalog/card-keys", content=b"", headers={"content-type": "text/csv"})
    assert r.status_code == 422 and "header" in r.json()["detail"]
    header_only = "SKU, serial ,secret\r\n"
    assert body_valid(openapi, "POST", path, header_only, media="text/csv")
    r = admin(hq, "POST", "/catalog/card-keys", content=header_only.encode(), headers={"content-type": "text/csv"})
    assert r.status_code == 200 and r.json()["added"] == 0
    unknown = "sku,serial,secret\nno-such-sku,S-1,X\n"
    assert body_valid(openapi, "POST", path, unknown, media="text/csv")
    r = admin(hq, "POST", "/catalog/card-keys", content=unknown.encode(), headers={"content-type": "text/csv"})
    assert r.status_code == 404 and r.json()["error"] == "not_found"


def test_5_renew_beyond_the_longest_term_is_a_conflict_not_a_validation_error(hq, openapi):
    path = "/v1/admin/licences/{site}/renew"
    assert body_valid(openapi, "POST", path, {"days": 3659})
    r = admin(hq, "POST", "/licences/fuzz-site/renew", json={"days": 3659})  # 365 days are left already
    assert r.status_code == 409 and r.json()["error"] == "term_too_long" and r.json()["detail"].startswith("days")
    assert "409" in openapi["paths"][path]["post"]["responses"]
    assert not body_valid(openapi, "POST", path, {"days": 3661})
    assert admin(hq, "POST", "/licences/fuzz-site/renew", json={"days": 3661}).status_code == 422


def test_6_catalog_item_category_and_integers_are_in_the_schema(hq, openapi):
    path = "/v1/admin/catalog/items/{sku}"
    item = {"name": "t", "category": "\u008c\u00df", "face_value_cents": 1661, "price_cents": 203.0}
    assert not body_valid(openapi, "PUT", path, item)  # the finding: any category was schema-valid
    r = admin(hq, "PUT", "/catalog/items/0ECM2..NP9UNAH", json=item)
    assert r.status_code == 422 and r.json()["detail"].startswith("category")
    good = {**item, "category": "game"}
    assert body_valid(openapi, "PUT", path, good)
    r = admin(hq, "PUT", "/catalog/items/0ECM2..NP9UNAH", json=good)
    assert r.status_code == 200 and r.json()["price_cents"] == 203
    r = admin(hq, "PUT", "/catalog/items/0ECM2..NP9UNAH", json={**good, "price_cents": True})
    assert not body_valid(openapi, "PUT", path, {**good, "price_cents": True}) and r.status_code == 422


def test_7_risk_rules_hold_only_what_an_order_can_carry(hq, openapi):
    path = "/v1/admin/risk-rules"
    for bad, field in (({"block": {"ips": ["\u0081\u00d2"]}}, "block.ips"),
                       ({"block": {"contacts": ["W\u0010"]}}, "block.contacts"),
                       ({"block": {"regions": ["an\u00ef("]}}, "block.regions"),
                       ({"limits": {"review_quantity": 10609498296737678941507035332608}}, "limits.review_quantity"),
                       ({"velocity": [{"key": "ip", "window_seconds": 60, "max_orders": 11764168.5}]},
                        "velocity.0.max_orders")):
        assert not body_valid(openapi, "PUT", path, bad), bad
        r = admin(hq, "PUT", "/risk-rules", json=bad)
        assert r.status_code == 422 and r.json()["detail"].startswith(field), (bad, r.text)
    good = {"block": {"ips": ["203.0.113.0/24", "2001:db8::/32", "198.51.100.7"], "contacts": ["bad@x"],
                      "regions": ["KP", "CN-GD"], "accounts": ["bad-acct"]},
            "site_daily": {"max_amount_cents": 2121}}
    assert body_valid(openapi, "PUT", path, good)
    assert admin(hq, "PUT", "/risk-rules", json=good).status_code == 200
    admin(hq, "PUT", "/risk-rules", json={})  # back to the defaults for the other tests


def test_8_stateful_issue_then_upgrade_to_a_smaller_tier_is_a_conflict(hq, openapi):
    issue = {"site": "state-site", "tier": "pro", "categories": ["game", "phone", "gift"]}
    assert body_valid(openapi, "POST", "/v1/admin/licences", issue)
    assert admin(hq, "POST", "/licences", json=issue).status_code == 200
    upgrade = {"tier": "basic"}  # schema-valid: the categories it would keep are HQ's state
    assert body_valid(openapi, "POST", "/v1/admin/licences/{site}/upgrade", upgrade)
    r = admin(hq, "POST", "/licences/state-site/upgrade", json=upgrade)
    assert r.status_code == 409 and r.json()["error"] == "too_many_categories"
    # with the categories in the body, the tier's limit is the schema's (if/then), and the server's
    both = {"tier": "basic", "categories": ["game", "phone", "gift"]}
    assert not body_valid(openapi, "POST", "/v1/admin/licences/{site}/upgrade", both)
    assert admin(hq, "POST", "/licences/state-site/upgrade", json=both).status_code == 422
    duplicates = {"site": "dup-site", "categories": ["game", "game", "game"]}  # the licence finding
    assert not body_valid(openapi, "POST", "/v1/admin/licences", duplicates)
    r = admin(hq, "POST", "/licences", json=duplicates)
    assert r.status_code == 422 and r.json()["detail"].startswith("categories")


@pytest.mark.parametrize("path, methods", [("/catalog/items/game-100", {"PUT", "DELETE"}),
                                           ("/licences", {"GET", "POST"}),
                                           ("/risk-rules", {"GET", "PUT"})])
def test_9_to_11_options_lists_every_documented_method_in_allow(hq, openapi, path, methods):
    documented = {m.upper() for m in openapi["paths"]["/v1/admin" + path.replace("game-100", "{sku}")]}
    assert documented == methods
    r = admin(hq, "OPTIONS", path)
    assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"
    allowed = {m.strip() for m in r.headers["allow"].split(",")}
    assert allowed - {"HEAD"} == methods


# -- domain validation of admin inputs (the state schemathesis left behind) -----------------------------------

@pytest.mark.parametrize("n, features", list(enumerate([["W\u0010", "\u00b1"], ["no-such-feature"], ["coupons", "coupons"]])))
def test_licence_features_come_from_the_known_set(hq, openapi, n, features):
    """Malformed or repeated names fail the schema; a well-formed name HQ has not registered (the registry is
    HQ's state) passes it and is refused with the documented code, naming the feature."""
    body = {"site": f"feature-site-{n}", "tier": "pro", "categories": ["game"], "features": features}
    assert body_valid(openapi, "POST", "/v1/admin/licences", body) == (features == ["no-such-feature"])
    r = admin(hq, "POST", "/licences", json=body)
    assert r.status_code == 422 and r.json()["detail"].startswith("features")
    if features == ["no-such-feature"]:
        assert r.json()["error"] == "invalid_licence_request" and "'no-such-feature'" in r.json()["detail"]
    assert admin(hq, "POST", "/licences", json={**body, "features": ["coupons", "notify"]}).status_code == 200

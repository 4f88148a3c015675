"""Fuzzing every token and body parser: "4xx or exit 2, one line, never a traceback".

hypothesis generates tokens (random text, and well-formed JWS around random
JSON), HQ request bodies, HQ answers and HQ-signed claims; each parser must
refuse what it does not accept with its own one-line error and nothing else.
"""

from __future__ import annotations

import json
import time

import httpx
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kitcore.errors import LicenceError
from kitcore.licence import jws
from kitcore.licence.keys import b64url
from kitcore.licence.token import LICENCE_TYP, verify_licence
from kitctl.cli import run
from tests.security.conftest import licence_claims, raw_sign

FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                          HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**40), max_value=10**40) | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)
# depths around the standard library's recursion limit (1,000) are drawn often, not by luck
nested = (st.sampled_from([2, 9, 999, 1001, 2500, 4000]) | st.integers(1, 4000)).map(lambda n: "[" * n + "]" * n)
edge_ints = st.sampled_from([10**30, 2**63, 2**64, -(2**63), 10**18, -1, 0, 253402300800])
json_texts = st.one_of(json_values.map(json.dumps), nested, st.text(max_size=200))
headers = st.one_of(
    st.fixed_dictionaries({"alg": st.sampled_from(["EdDSA", "none", "HS256", "RS256"]),
                           "typ": st.sampled_from([LICENCE_TYP, "kitctl-command+jwt", "JWT"]),
                           "kid": st.one_of(st.text(max_size=20), json_values)}).map(json.dumps),
    nested,
    json_texts,
)


HEADER_SAFE = st.characters(min_codepoint=33, max_codepoint=126)


@st.composite
def tokens(draw, header_safe: bool = False) -> str:  # type: ignore[no-untyped-def]
    """Mostly well-formed compact JWS with hostile parts; sometimes any text (that HTTP can carry)."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.text(HEADER_SAFE if header_safe else st.characters(), min_size=1, max_size=300))
    header = draw(headers).encode("utf-8", "surrogatepass")
    payload = draw(json_texts).encode("utf-8", "surrogatepass")
    signature = draw(st.binary(min_size=0, max_size=80))
    return ".".join(b64url(part) for part in (header, payload, signature))


@FUZZ
@given(token=tokens())
def test_verifier_refuses_any_token_with_a_licence_error(key_store, token):
    with pytest.raises(LicenceError) as caught:
        verify_licence(token, key_store.pinned())
    assert "\n" not in str(caught.value)


hq_claims = st.dictionaries(
    st.sampled_from(["iss", "sub", "jti", "iat", "nbf", "exp", "tier", "features", "categories", "regions",
                     "revenue_share_bps", "hq_url", "registry"]),
    json_values | edge_ints, max_size=6,
)


@FUZZ
@given(overrides=hq_claims)
def test_hq_signed_claims_verify_or_refuse_and_always_display(key_store, overrides):
    """Even HQ's own key cannot sign claims that crash the verifier or the report of them."""
    from kitctl.licence.inspect import Inspection, _fmt

    token = raw_sign(json.dumps(licence_claims(**overrides)).encode(), key_store, LICENCE_TYP)
    try:
        licence = verify_licence(token, key_store.pinned())
    except LicenceError as exc:
        assert "\n" not in str(exc)
        return
    for name, value in licence.claims.model_dump().items():
        _fmt(name, value)
    Inspection(valid=True, status=licence.status, reason=None, claims=licence.claims.model_dump()).as_dict()


@FUZZ
@given(payload=st.dictionaries(st.sampled_from(["id", "seq", "type", "site", "iat", "exp", "payload"]),
                               json_values | edge_ints, max_size=7))
def test_agent_refuses_any_hq_signed_command_it_cannot_act_on(key_store, payload):
    from agent.commands import CommandProcessor, Rejected

    now = int(time.time())
    envelope = {"id": "c1", "seq": 1, "type": "sync_now", "site": "xingchen", "iat": now, "exp": now + 60,
                "payload": {}, **payload}
    checker = CommandProcessor.__new__(CommandProcessor)
    checker.keys, checker.site_id = key_store.pinned(), "xingchen"
    token = raw_sign(json.dumps(envelope).encode(), key_store, "kitctl-command+jwt")
    try:
        checker.check(token, 0, now)
    except Rejected as rej:
        assert "\n" not in rej.detail


@FUZZ
@given(token=tokens())
def test_agent_refuses_any_command_token(key_store, token):
    from agent.commands import CommandProcessor, Rejected

    checker = CommandProcessor.__new__(CommandProcessor)
    checker.keys, checker.site_id = key_store.pinned(), "xingchen"
    with pytest.raises(Rejected):
        checker.check(token, 0, time.time())


ANSWERS = ["CatalogPage", "OrdersReply", "OrderResult", "HeartbeatReply"]


@FUZZ
@given(answer=st.sampled_from(ANSWERS), body=st.one_of(
    json_texts.map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=200),
    nested.map(lambda n: b'{"interval_seconds": 5, "licence": {"status": "a"}, "x": ' + n.encode() * 30 + b"}")))
def test_agent_decodes_any_hq_answer_or_calls_it_malformed(answer, body):
    from agent import hq_client

    try:
        hq_client.decode(body, getattr(hq_client, answer))
    except msgspec.DecodeError as exc:
        assert "\n" not in hq_client.describe(exc)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(token=tokens())
def test_licence_inspect_exits_2_with_one_line_for_any_token(capsys, keys_file, token):
    capsys.readouterr()
    code = run(["licence", "inspect", token, "--hq-keys", str(keys_file)])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert len([line for line in captured.err.splitlines() if line.strip()]) == 1, captured.err


SITE_CALLS = [("GET", "/v1/catalog"), ("POST", "/v1/orders"), ("GET", "/v1/orders/o1"), ("POST", "/v1/heartbeat"),
              ("GET", "/v1/admin/sites"), ("POST", "/v1/admin/licences")]


def assert_4xx_one_line(resp: httpx.Response) -> None:
    assert 400 <= resp.status_code < 500, (resp.status_code, resp.text[:300])
    assert "\n" not in resp.text and set(resp.json()) == {"error", "detail"}


@FUZZ
@given(call=st.sampled_from(SITE_CALLS), token=tokens(header_safe=True), body=json_texts)
def test_hq_answers_any_token_and_body_with_a_4xx_line(served_hq, call, token, body):
    method, path = call
    with httpx.Client(base_url=served_hq.url, timeout=10) as client:
        resp = client.request(method, path, content=body.encode("utf-8", "surrogatepass"),
                              headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    assert_4xx_one_line(resp)


@pytest.fixture(scope="module")
def site_token(served_hq) -> str:  # type: ignore[no-untyped-def]
    return served_hq.issue_licence("fuzzsite", categories=["game"])


@FUZZ
@given(path=st.sampled_from(["/v1/orders", "/v1/heartbeat"]), body=json_texts,
       shaped=st.dictionaries(st.sampled_from(["orders", "version", "applied_seq", "health", "counters"]),
                              json_values, max_size=5))
def test_hq_answers_any_authenticated_body_without_a_500(served_hq, site_token, path, body, shaped):
    with httpx.Client(base_url=served_hq.url, timeout=10) as client:
        for content in (body.encode("utf-8", "surrogatepass"), json.dumps(shaped).encode()):
            resp = client.post(path, content=content, headers={
                "Authorization": f"Bearer {site_token}", "Content-Type": "application/json",
                "Idempotency-Key": "fuzz-" + str(hash(content))})
            if resp.status_code != 200:
                assert_4xx_one_line(resp)

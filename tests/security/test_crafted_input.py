"""Crafted tokens and answers are refused with one line: never a traceback, never a 500.

Each of these crashed before: a deeply nested token header raised RecursionError
(HQ answered 500 without any login; the CLI printed a traceback; the agent
dropped every command of the heartbeat answer), an HQ-signed `exp` of 10^30
raised OverflowError wherever a date was shown.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import httpx
import msgspec
import pytest

from kitcore.errors import InvalidInput, LicenceError
from kitcore.licence import jws
from kitcore.licence.keys import load_jwks
from kitcore.licence.token import verify_licence
from kitctl.cli import run
from tests.security.conftest import NESTED, nested_header_token, sign_licence

SITE_ENDPOINTS = [("GET", "/v1/catalog"), ("POST", "/v1/orders"), ("GET", "/v1/orders/o1"),
                  ("POST", "/v1/heartbeat")]


def one_line_error(resp: httpx.Response, status: int) -> dict:
    assert resp.status_code == status, resp.text
    assert "\n" not in resp.text
    body = resp.json()
    assert set(body) == {"error", "detail"} and "Traceback" not in body["detail"]
    return body


def test_nested_token_header_is_refused_by_the_verifier(key_store):
    with pytest.raises(LicenceError, match="header is not acceptable JSON"):
        jws.verify(nested_header_token(), key_store.pinned(), "kitctl-licence+jwt")


@pytest.mark.parametrize("exp", [10**30, 10**18, -1])
def test_hq_signed_exp_out_of_any_calendar_is_refused(key_store, exp):
    token = sign_licence(key_store, exp=exp)
    with pytest.raises(LicenceError, match="claim 'exp'"):
        verify_licence(token, key_store.pinned())


def test_nested_payload_signed_by_hq_is_refused_not_recursed(key_store):
    """Even HQ's own key cannot make a verifier recurse: the payload's nesting is bounded too."""
    token = jws.sign({"deep": json.loads(NESTED[:900] + NESTED[-900:])}, key_store, "kitctl-licence+jwt")
    with pytest.raises(LicenceError, match="payload is not acceptable JSON"):
        jws.verify(token, key_store.pinned(), "kitctl-licence+jwt")


@pytest.mark.parametrize("method,path", SITE_ENDPOINTS)
def test_hq_site_endpoints_answer_401_to_a_nested_token(served_hq, method, path):
    resp = httpx.request(method, served_hq.url + path, json={},
                         headers={"Authorization": f"Bearer {nested_header_token()}"}, timeout=10)
    assert one_line_error(resp, 401)["error"] == "invalid_licence"


def test_hq_answers_401_to_a_licence_with_a_huge_exp(served_hq):
    token = sign_licence(served_hq.service.keys, exp=10**30)
    resp = httpx.get(served_hq.url + "/v1/catalog", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert "exp" in one_line_error(resp, 401)["detail"]


def _cli_one_line(capsys, argv: list[str]) -> str:
    assert run(argv) == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0]


def test_licence_inspect_of_a_nested_token_exits_2_with_one_line(capsys, keys_file):
    line = _cli_one_line(capsys, ["licence", "inspect", nested_header_token(), "--hq-keys", str(keys_file)])
    assert "header is not acceptable JSON" in line


def test_licence_inspect_of_a_huge_exp_exits_2_with_one_line(capsys, key_store, keys_file):
    token = sign_licence(key_store, exp=10**30)
    assert "exp" in _cli_one_line(capsys, ["licence", "inspect", token, "--hq-keys", str(keys_file)])


@pytest.mark.parametrize("token_of", [lambda store: nested_header_token(),
                                      lambda store: sign_licence(store, exp=10**30)])
def test_render_of_a_crafted_licence_exits_2_with_one_line(capsys, tmp_path, key_store, keys_file, token_of):
    licence = tmp_path / "licence.jwt"
    licence.write_text(token_of(key_store))
    line = _cli_one_line(capsys, ["render", "--licence", f"@{licence}", "--hq-keys", str(keys_file),
                                  "--name", "Shop", "--domain", "shop.example.cn",
                                  "--site-dir", str(tmp_path / "site")])
    assert line.startswith("error: licence rejected")
    assert not (tmp_path / "site").exists()


def test_pinned_keys_file_nested_deeply_is_one_clear_error(tmp_path):
    path = tmp_path / "keys.json"
    path.write_bytes(b'{"keys": ' + NESTED + b"}")
    with pytest.raises(InvalidInput, match="is not JSON"):
        load_jwks(path)


def test_agent_refuses_a_deeply_nested_hq_answer_as_malformed():
    from agent.hq_client import HeartbeatReply, decode

    body = b'{"interval_seconds": 5, "licence": {"status": "active"}, "x": ' + NESTED * 40 + b"}"
    with pytest.raises(msgspec.DecodeError, match="nests too deeply"):
        decode(body, HeartbeatReply)


def _command(store, site_id: str, seq: int) -> str:
    now = int(time.time())
    return jws.sign({"id": str(uuid.uuid4()), "seq": seq, "type": "suspend", "site": site_id, "iat": now,
                     "exp": now + 600, "payload": {"reason": "crafted batch"}}, store, "kitctl-command+jwt")


def test_one_crafted_command_does_not_stop_the_valid_ones_in_its_batch(tmp_path, key_store):
    from agent.commands import CommandProcessor
    from agent.metrics import AgentMetrics
    from agent.state import ensure_state, read_state
    from sitedb.engine import make_engine
    from sitedb.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'site.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    ensure_state(engine, "xingchen")
    metrics = AgentMetrics()
    processor = CommandProcessor(engine, key_store.pinned(), "xingchen", metrics)
    huge_exp = jws.sign({"id": "c-huge", "seq": 2, "type": "revoke", "site": "xingchen", "iat": 1,
                         "exp": 10**30, "payload": {}}, key_store, "kitctl-command+jwt")
    applied = processor.process([nested_header_token(), huge_exp, _command(key_store, "xingchen", 1)])
    assert applied == 1
    state = read_state(engine)
    assert (state.licence_status, state.status_reason, state.applied_seq) == ("suspended", "crafted batch", 1)
    assert metrics.commands_rejected.labels("signature")._value.get() == 1
    assert metrics.commands_rejected.labels("malformed")._value.get() == 1
    engine.dispose()

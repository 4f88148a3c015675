"""Heartbeat and HQ's signed commands, end to end through the real HQ's admin API."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from agent.state import read_state
from kitcore.licence import jws
from kitcore.licence.keys import HQKeyStore
from sitedb.models import HQCommand
from sitedb.tables import TAKES_ORDERS


def admin(hq, path: str, **body) -> dict:  # type: ignore[no-untyped-def]
    resp = httpx.post(f"{hq.url}/v1/admin{path}", headers=hq.admin_headers(), json=body or None, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_suspend_resume_revoke_via_heartbeat(hq, started, engine, site) -> None:  # type: ignore[no-untyped-def]
    started.heartbeat.beat()
    assert read_state(engine).licence_status == "active"
    admin(hq, f"/licences/{site.site_id}/suspend", reason="unpaid invoice")
    started.heartbeat.beat()
    state = read_state(engine)
    assert (state.licence_status, state.status_reason) == ("suspended", "unpaid invoice")
    assert state.licence_status not in TAKES_ORDERS and state.applied_seq == 1
    admin(hq, f"/licences/{site.site_id}/resume")
    started.heartbeat.beat()
    assert read_state(engine).licence_status == "active"
    admin(hq, f"/licences/{site.site_id}/revoke", reason="terms broken")
    started.heartbeat.beat()
    state = read_state(engine)
    assert (state.licence_status, state.status_reason, state.applied_seq) == ("revoked", "terms broken", 3)
    # HQ saw the acknowledgement: nothing is pending for the site any more
    fleet = httpx.get(f"{hq.url}/v1/admin/sites", headers=hq.admin_headers()).json()
    assert [s["applied_seq"] for s in fleet if s["site"] == site.site_id] == [3]
    with started.engine.connect() as c:
        assert c.execute(HQCommand.__table__.select()).rowcount != 0


def test_upgrade_enables_features_and_resyncs_new_categories(hq, started, engine, site) -> None:  # type: ignore[no-untyped-def]
    hq.seed_item("g1", category="game", stock_kind="direct_topup")
    hq.seed_item("v1", category="video", stock_kind="direct_topup")
    started.sync.run()
    from tests.agent.test_sync import items

    assert "g1" in items(engine) and "v1" not in items(engine)
    assert read_state(engine).tier == "pro"
    admin_put = httpx.post(f"{hq.url}/v1/admin/licences/{site.site_id}/upgrade", headers=hq.admin_headers(),
                           json={"tier": "flagship", "categories": ["game", "phone", "video"]})
    assert admin_put.status_code == 200, admin_put.text
    started.heartbeat.beat()
    state = read_state(engine)
    assert state.tier == "flagship" and "regional-pricing" in state.features
    assert set(state.categories) == {"game", "phone", "video"}
    assert started.sync_wakeup.is_set()  # a full resync was queued
    result = started.sync.run()
    assert result.mode == "full"
    assert {"g1", "v1"} <= set(items(engine))
    # the new licence now authenticates the agent
    assert started.clients[0].token == state.licence_token


def test_sync_now_command_wakes_the_sync_loop(hq, started, site) -> None:  # type: ignore[no-untyped-def]
    admin(hq, f"/sites/{site.site_id}/sync")
    started.sync_wakeup.clear()
    started.heartbeat.beat()
    assert started.sync_wakeup.is_set()


def _command(store: HQKeyStore, site_id: str, seq: int, type_: str = "suspend", exp_in: int = 600,
             **payload) -> str:  # type: ignore[no-untyped-def]
    now = int(time.time())
    return jws.sign({"id": str(uuid.uuid4()), "seq": seq, "type": type_, "site": site_id, "iat": now,
                     "exp": now + exp_in, "payload": payload or {"reason": "test"}}, store, "kitctl-command+jwt")


@pytest.mark.parametrize("site_db_url", ["sqlite"], indirect=True)
def test_bad_commands_are_refused_counted_and_logged_once(hq, started, engine, site, tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    forger = HQKeyStore(tmp_path / "forger")
    forger.init()
    real = HQKeyStore(hq.hq_dir)
    proc = started.commands
    bad = {
        "signature": _command(forger, site.site_id, 1),
        "wrong_site": _command(real, "other-site", 1),
        "expired": _command(real, site.site_id, 1, exp_in=-3600),
    }
    for _ in range(3):  # HQ may hand the same bad command out at every heartbeat
        assert proc.process(list(bad.values())) == 0
    for reason in bad:
        assert started.metrics.commands_rejected.labels(reason)._value.get() == 1
    assert [r.message for r in caplog.records if r.name == "agent.commands"].__len__() == 3
    assert read_state(engine).licence_status == "active" and read_state(engine).applied_seq == 0
    good = _command(real, site.site_id, 1, "suspend", reason="checked")
    assert proc.process([good]) == 1
    assert read_state(engine).licence_status == "suspended"
    # replay of an applied seq, even with a fresh id and signature: refused
    assert proc.process([_command(real, site.site_id, 1, "resume")]) == 0
    assert started.metrics.commands_rejected.labels("replayed")._value.get() == 1
    assert read_state(engine).licence_status == "suspended"
    # a licence command whose token is forged is not installed
    forged_licence = "x.y.z"
    assert proc.process([_command(real, site.site_id, 2, "licence", token=forged_licence)]) == 1
    assert read_state(engine).tier == "pro" and read_state(engine).applied_seq == 2
    assert started.metrics.command_outcomes.labels("licence", "refused")._value.get() == 1
    assert started.metrics.command_outcomes.labels("licence", "applied")._value.get() == 0


def test_resume_makes_orders_held_by_the_suspension_due_and_wakes_the_forwarder(hq, started, engine, site) -> None:  # type: ignore[no-untyped-def]
    from agent.hq_client import HQError
    from tests.agent.helpers import order_counts, write_orders

    hq.seed_item("topup-held", category="game", price_cents=1000, stock_kind="direct_topup")
    admin(hq, f"/licences/{site.site_id}/suspend", reason="unpaid invoice")
    started.heartbeat.beat()
    [oid] = write_orders(engine, 1, "topup-held", unit_price_cents=1000)
    started.forwarder.backoff_base = started.forwarder.backoff_cap = 600  # a long wait, as after many refusals
    with pytest.raises(HQError) as err:
        started.forwarder.forward_once()
    assert err.value.kind == "refused"  # a state HQ holds, not an auth failure
    m = started.metrics
    assert m.hq_refused.labels("orders", "suspended")._value.get() == 1
    assert m.hq_errors.labels("orders", "auth")._value.get() == 0
    assert m.licence_transitions.labels("active", "suspended")._value.get() == 1
    assert m.command_outcomes.labels("suspend", "applied")._value.get() == 1
    assert started.forwarder.due_orders(10) == []  # held: its next attempt is minutes away
    started.forward_wakeup.clear()
    admin(hq, f"/licences/{site.site_id}/resume")
    started.heartbeat.beat()
    assert read_state(engine).licence_status == "active"
    assert m.licence_transitions.labels("suspended", "active")._value.get() == 1
    assert m.command_outcomes.labels("resume", "applied")._value.get() == 1
    assert started.forward_wakeup.is_set()  # the forward loop's backoff wait ends now
    assert [o.id for o in started.forwarder.due_orders(10)] == [oid]
    assert started.forwarder.forward_once().decided == 1
    assert order_counts(engine) == {"delivered": 1}

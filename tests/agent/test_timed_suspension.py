"""A timed suspension as the licensee sees it: the reason and the end date HQ set, gone once lifted."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from agent.state import read_state
from hq import sanctions


@pytest.mark.parametrize("site_db_url", ["sqlite"], indirect=True)
def test_the_end_date_reaches_the_site_and_goes_when_hq_lifts_it(hq, started, engine, site) -> None:  # type: ignore[no-untyped-def]
    from storefront.state import LicenceView

    begun = datetime.now(timezone.utc).replace(microsecond=0)
    sanctions.suspend_for(hq.service, "op", site.site_id, "chargebacks", days=5, now=begun)
    started.heartbeat.beat()
    state = read_state(engine)
    until = int((begun + timedelta(days=5)).timestamp())
    assert (state.licence_status, state.status_reason, state.health["suspended_until"]) == \
        ("suspended", "chargebacks", until)
    view = LicenceView(known=True, status=state.licence_status, reason=state.status_reason, health=dict(state.health))
    assert view.suspended_until == until and not view.takes_orders
    assert sanctions.lift_due(hq.service, now=begun + timedelta(days=5)) == [site.site_id]
    started.heartbeat.beat()
    state = read_state(engine)
    assert state.licence_status == "active" and "suspended_until" not in state.health
    assert LicenceView(known=True, status="active", reason=None, health=dict(state.health)).suspended_until is None


@pytest.mark.parametrize("site_db_url", ["sqlite"], indirect=True)
def test_an_open_ended_suspension_has_no_end_date(hq, started, engine, site) -> None:  # type: ignore[no-untyped-def]
    sanctions.suspend_for(hq.service, "op", site.site_id, "investigation", days=None)
    started.heartbeat.beat()
    state = read_state(engine)
    assert state.licence_status == "suspended" and "suspended_until" not in state.health


@pytest.mark.parametrize("until", [True, "1796000000", -5, 2**70, 1.5e9])
def test_an_end_date_hq_could_not_have_sent_is_not_shown(until) -> None:  # type: ignore[no-untyped-def]
    from agent.commands import suspension_end

    assert suspension_end({"until": until}) is None
    assert suspension_end({"until": 1_796_000_000}) == 1_796_000_000

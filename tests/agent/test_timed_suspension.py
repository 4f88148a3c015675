"""A timed suspension as the licensee sees it: the reason and the end date HQ set, gone once lifted."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from agent.state import read_state
from hq import sanctions


@pytest.mark.parametrize("site_db_url", ["sqlite"], indirect=True)
def test_the_end_date_reaches_the_site_and_goes_when_hq_lifts_it(hq, started, engine, site) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy.orm import Session

    from storefront.state import read_licence

    begun = datetime.now(timezone.utc).replace(microsecond=0)
    sanctions.suspend_for(hq.service, "op", site.site_id, "chargebacks", days=5, now=begun)
    started.heartbeat.beat()
    until = int((begun + timedelta(days=5)).timestamp())
    with Session(engine) as session:  # what the site admin's licence page reads
        view = read_licence(session)
    assert (view.status, view.reason, view.suspended_until, view.takes_orders) == \
        ("suspended", "chargebacks", until, False)
    assert sanctions.lift_due(hq.service, now=begun + timedelta(days=5)) == [site.site_id]
    started.heartbeat.beat()
    with Session(engine) as session:
        view = read_licence(session)
    assert (view.status, view.suspended_until) == ("active", None)
    sanctions.suspend_for(hq.service, "op", site.site_id, "again, until resumed", days=None)
    started.heartbeat.beat()
    with Session(engine) as session:  # the earlier timed suspension's end is not this one's
        view = read_licence(session)
    assert (view.status, view.reason, view.suspended_until) == ("suspended", "again, until resumed", None)


@pytest.mark.parametrize("site_db_url", ["sqlite"], indirect=True)
def test_an_open_ended_suspension_has_no_end_date(hq, started, engine, site) -> None:  # type: ignore[no-untyped-def]
    sanctions.suspend_for(hq.service, "op", site.site_id, "investigation", days=None)
    started.heartbeat.beat()
    from sqlalchemy.orm import Session

    from storefront.state import read_licence

    with Session(engine) as session:
        view = read_licence(session)
    assert read_state(engine).licence_status == view.status == "suspended" and view.suspended_until is None


@pytest.mark.parametrize("until", [True, "1796000000", -5, 2**70, 1.5e9, None])
def test_an_end_date_hq_could_not_have_sent_is_not_shown(until) -> None:  # type: ignore[no-untyped-def]
    from sitedb.suspension import valid_until

    assert valid_until(until) is None
    assert valid_until(1_796_000_000) == 1_796_000_000

"""`sites.licence_expires_at` (migration 0037) follows the site's current licence through every write the
licence paths make, on SQLite and PostgreSQL: the fleet page's expiry sort and active/expired filters read
it instead of joining every licence, so a stale copy would list a site in the wrong place."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import insert, select, text, update

from hq import fleet_query, licences
from hq.clock import aware, utcnow
from hq.models import Licence, Site
from hq.testing import RunningHQ


def _copied(hq: RunningHQ, site: str) -> tuple[object, object]:
    """(the site's copy of the expiry, its current licence's expiry)."""
    with hq.service.engine.connect() as conn:
        copy, jti = conn.execute(select(Site.licence_expires_at, Site.current_jti).where(Site.id == site)).one()
        real = conn.execute(select(Licence.expires_at).where(Licence.jti == jti)).scalar_one()
    return copy and aware(copy), aware(real)


def _listed(hq: RunningHQ, **params: str) -> list[str]:
    return [row["site"] for row in fleet_query.fetch(hq.service, fleet_query.parse(list(params.items()))).rows]


def test_the_sites_copy_of_its_expiry_follows_issue_renew_and_upgrade(hq_server):
    service = hq_server.service
    licences.issue(service, "op", "alpha", "basic", ["game"], 30)
    licences.issue(service, "op", "beta", "basic", ["game"], 10)
    copy, real = _copied(hq_server, "alpha")
    assert copy is not None and copy == real
    assert _listed(hq_server, sort="expires") == ["beta", "alpha"]

    licences.renew(service, "op", "beta", 60)  # a new licence row, a new current_jti
    copy, real = _copied(hq_server, "beta")
    assert copy == real and real - utcnow() > timedelta(days=60)
    assert _listed(hq_server, sort="expires") == ["alpha", "beta"]
    assert _listed(hq_server, sort="expires", order="desc") == ["beta", "alpha"]

    licences.upgrade(service, "op", "alpha", tier="pro")
    assert _copied(hq_server, "alpha")[0] == _copied(hq_server, "alpha")[1]


def test_a_licence_expiry_changed_in_place_moves_the_site_between_active_and_expired(hq_server):
    service = hq_server.service
    licences.issue(service, "op", "gamma", "basic", ["game"], 30)
    assert _listed(hq_server, state="active") == ["gamma"] and _listed(hq_server, state="expired") == []
    with service.engine.begin() as conn:
        jti = conn.execute(select(Site.current_jti).where(Site.id == "gamma")).scalar_one()
        conn.execute(update(Licence).where(Licence.jti == jti).values(expires_at=utcnow() - timedelta(hours=1)))
    assert _listed(hq_server, state="expired") == ["gamma"] and _listed(hq_server, state="active") == []


def test_a_site_written_before_its_licence_row_takes_the_licences_expiry(hq_server):
    """The order an ORM flush or a bulk load writes the two rows in: the site names a licence not there yet."""
    now, later = utcnow(), utcnow() + timedelta(days=5)
    with hq_server.service.engine.begin() as conn:
        conn.execute(insert(Site).values(id="delta", created_at=now, status="active", current_jti="j-delta",
                                         command_seq=0, applied_seq=0))
        conn.execute(insert(Licence).values(jti="j-delta", site_id="delta", tier="basic", features=[],
                                            categories=["game"], regions=[], revenue_share_bps=0, issued_at=now,
                                            expires_at=later, issued_by="op", token_sha256="0" * 64))
        conn.execute(update(Site).where(Site.id == "delta").values(current_jti=None))
        assert conn.execute(text("SELECT licence_expires_at FROM sites WHERE id = 'delta'")).scalar_one() is None
        conn.execute(update(Site).where(Site.id == "delta").values(current_jti="j-delta"))
    copy, real = _copied(hq_server, "delta")
    assert copy == real and abs(real - later) < timedelta(seconds=1)

"""HQ's PostgreSQL connections are made within the deadline its settings give (KIT_HQ_DB_CONNECT_SECONDS)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, text

from hq.service import HQ
from hq.settings import HQSettings
from tests.hq import pg


def test_the_deadline_defaults_to_one_second_and_refuses_nonsense():
    assert HQSettings.model_fields["db_connect_seconds"].default == 1.0
    for bad in ("0", "-1", "61", "soon"):
        with pytest.raises(ValueError):
            HQSettings(db_connect_seconds=bad)


@pytest.mark.postgres
def test_every_new_connection_gets_the_configured_deadline(tmp_path, hq_pg_server, hq_pg_template):
    with pg.fresh_database(hq_pg_server, template=hq_pg_template) as url:
        hq = HQ.open(HQSettings(dir=tmp_path, database_url=url, db_connect_seconds=7), migrate=False)
        seen: list[Any] = []
        event.listen(hq.engine, "do_connect", lambda _d, _r, _a, params: seen.append(params.get("connect_timeout")))
        try:
            hq.engine.dispose()  # the connection HQ.open used is pooled: the next one is new
            with hq.engine.connect() as conn:
                assert conn.execute(text("SELECT 1")).scalar_one() == 1
        finally:
            hq.close()
    assert seen == [7]

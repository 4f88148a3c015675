"""HQ asks a site for a support bundle with a signed command; the agent uploads it redacted; the operator
downloads it from the fleet page."""

from __future__ import annotations

import io
import logging
import tarfile

import httpx
import pytest

from agent.logs import RECENT
from hq import support


@pytest.mark.parametrize("site_db_url", ["sqlite"], indirect=True)
def test_a_requested_bundle_reaches_the_fleet_page_redacted(hq, started, engine, site) -> None:  # type: ignore[no-untyped-def]
    from agent.state import audit

    licence = site.licence_file.read_text().strip()
    site_key = site.site_key_file.read_text().strip()
    with engine.begin() as conn:  # what a bundle must not carry, in the places a bundle reads
        audit(conn, "order_created", buyer_contact="li.si@example.cn", phone="13900001111", ok="kept")
    RECENT.setFormatter(logging.Formatter("%(message)s"))
    RECENT.emit(logging.LogRecord("agent", logging.INFO, "", 0, f"debug: key {site_key} token {licence}", (), None))
    started.heartbeat.beat()

    asked = support.request(hq.service, "tester", site.site_id)
    started.heartbeat.beat()  # the command arrives, is verified and applied; the upload runs on its own thread
    assert started.metrics.command_outcomes.labels("support_bundle", "applied")._value.get() == 1
    for _ in range(100):
        if support.listing(hq.service)[0]["received_at"]:
            break
        import time

        time.sleep(0.1)
    with httpx.Client(base_url=hq.url, follow_redirects=True) as operator:
        operator.post("/fleet/login", data={"token": hq.operator_token})
        page = operator.get("/fleet").text
        assert f'/fleet/support-bundles/{asked["request_id"]}' in page
        archive = operator.get(f'/fleet/support-bundles/{asked["request_id"]}')
        assert archive.status_code == 200 and archive.headers["content-type"] == "application/gzip"
        assert httpx.get(f'{hq.url}/fleet/support-bundles/{asked["request_id"]}',
                         follow_redirects=False).status_code == 303  # no session, no bundle
    with tarfile.open(fileobj=io.BytesIO(archive.content)) as tar:
        files = {m.name: tar.extractfile(m).read().decode() for m in tar.getmembers()}  # type: ignore[union-attr]
    text = "\n".join(files.values())
    for secret in (licence, site_key, "li.si@example.cn", "13900001111", site.db_url.split("///")[-1]):
        assert secret not in text
    assert "kitagent_up" in files["support-bundle/metrics/agent.prom"]
    assert '"ok": "kept"' in files["support-bundle/audit.json"]
    assert "debug: key [redacted]" in files["support-bundle/logs/agent.log"]


def test_hq_refuses_uploads_nobody_asked_for(hq, started, site) -> None:  # type: ignore[no-untyped-def]
    from agent.hq_client import HQError

    client = started.clients[0]
    with pytest.raises(HQError) as err:
        client.upload_support_bundle("00000000-0000-0000-0000-000000000000", b"\x1f\x8b not really")
    assert err.value.status == 404
    asked = support.request(hq.service, "tester", site.site_id)
    client.upload_support_bundle(asked["request_id"], b"\x1f\x8b first")
    with pytest.raises(HQError) as err:
        client.upload_support_bundle(asked["request_id"], b"\x1f\x8b second")
    assert err.value.status == 409  # once: the first upload stays

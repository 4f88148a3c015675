"""The public application endpoints' limits, on SQLite and PostgreSQL: a few submissions per address (the
API and the page), and a body limit sized to the documented materials; over either is one clear message
and nothing stored."""

from __future__ import annotations

import base64
import socket
from urllib.parse import urlsplit

import httpx
from sqlalchemy import func, select

from hq import application_files as files, apply_limits
from hq.app import _body_limits
from hq.models import Application, ApplicationEvent, ApplicationMaterial
from hq.testing import running_hq
from tests.hq.application_support import application


def _stored(hq) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    with hq.service.session() as s:
        return tuple(int(s.scalar(select(func.count()).select_from(t))) for t in (Application, ApplicationMaterial,
                                                                                  ApplicationEvent))


def test_an_address_gets_a_few_submissions_then_a_clear_refusal(tmp_path, db_url) -> None:  # type: ignore[no-untyped-def]
    with running_hq(tmp_path, database_url=db_url, registry_url=None, apply_burst=2, apply_per_hour=1) as hq:
        hq.seed_item("game-100", category="game")
        first = httpx.post(f"{hq.url}/v1/applications", json=application(), timeout=30)
        assert first.status_code == 201, first.text
        refused_one = httpx.post(f"{hq.url}/v1/applications", json=application(categories=("video",)), timeout=30)
        assert refused_one.status_code == 422  # a refused submission counts too
        before = _stored(hq)
        over = httpx.post(f"{hq.url}/v1/applications", json=application(email="other@xingchen.cn", name="其他公司"),
                          timeout=30)
        assert over.status_code == 429 and over.json()["error"] == "rate_limited"
        assert "nothing was stored" in over.json()["detail"] and int(over.headers["retry-after"]) >= 1
        page = httpx.post(f"{hq.url}/apply", data={"applicant": "company"}, timeout=30)
        assert page.status_code == 429 and "提交过于频繁" in page.text and "Too many submissions" in page.text
        number = first.json()["number"]
        resubmit = httpx.post(f"{hq.url}/v1/applications/{number}/resubmit", json={"secret": "x" * 32, "materials": []})
        assert resubmit.status_code == 429
        assert httpx.get(f"{hq.url}/v1/applications/{number}",  # following progress is not a submission
                         headers={"X-Application-Secret": first.json()["secret"]}).status_code == 200
        assert _stored(hq) == before


def test_the_body_limit_fits_the_documented_materials_and_no_more(tmp_path, db_url) -> None:  # type: ignore[no-untyped-def]
    largest = len(base64.b64encode(b"\0" * files.MAX_FILE_BYTES))
    assert apply_limits.MAX_MATERIALS == 7  # identity + one per category (six categories)
    limits = _body_limits()
    assert limits["/v1/applications"] >= 7 * (largest + 200) and limits["/v1/applications"] < 8 * largest
    assert limits["/apply"] >= 7 * files.MAX_FILE_BYTES and limits["/apply"] < 8 * files.MAX_FILE_BYTES
    with running_hq(tmp_path, database_url=db_url, registry_url=None) as hq:
        before = _stored(hq)
        for path in ("/v1/applications", "/apply"):
            declared = limits[path] + 1  # said up front: refused before a byte of the body is read
            url = urlsplit(hq.url)
            with socket.create_connection((url.hostname, url.port), timeout=30) as sock:
                sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             f"Content-Length: {declared}\r\n\r\n{{}}".encode())
                answer = sock.recv(4096).decode()
            assert answer.startswith("HTTP/1.1 413"), answer[:200]
            assert f"request body is larger than {limits[path]} bytes" in answer
        assert _stored(hq) == before

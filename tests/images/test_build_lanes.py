"""Images of different Dockerfiles are built side by side; those of one Dockerfile one after another."""

from __future__ import annotations

import threading
import time

import pytest

from kitctl.images import SERVICES
from kitctl.images.build import BuiltImage, lanes, run_lanes
from kitcore.errors import KitError


def _built(service: str) -> BuiltImage:
    return BuiltImage(service, f"kitctl/{service}:t", f"sha256:{service}", 0.0, 0)


def test_the_lanes_group_each_dockerfiles_images_in_build_order():
    assert lanes(list(SERVICES)) == [["storefront", "agent", "hq"], ["db"], ["proxy"], ["prometheus", "alertmanager"]]
    assert lanes(["proxy", "agent", "alertmanager", "storefront"]) == [["proxy"], ["agent", "storefront"],
                                                                       ["alertmanager"]]


def test_two_lanes_run_at_once_and_a_lanes_images_never_overlap():
    running: set[str] = set()
    overlaps: list[set[str]] = []
    lock = threading.Lock()
    db_started = threading.Event()

    def build_one(service: str) -> BuiltImage:
        with lock:
            running.add(service)
            overlaps.append(set(running))
        if service == "storefront":  # waits for the other lane: only a build beside it lets this go on
            assert db_started.wait(10), "db was not built beside storefront"
        if service == "db":
            db_started.set()
        time.sleep(0.01)
        with lock:
            running.discard(service)
        return _built(service)

    built = run_lanes(lanes(list(SERVICES)), build_one, jobs=2)
    assert sorted(built) == sorted(SERVICES) and all(b.service == s for s, b in built.items())
    python, monitoring = {"storefront", "agent", "hq"}, {"prometheus", "alertmanager"}
    assert all(len(seen & python) <= 1 and len(seen & monitoring) <= 1 for seen in overlaps)
    assert max(len(seen) for seen in overlaps) == 2  # never more than `jobs`


def test_one_job_builds_in_order():
    order: list[str] = []
    run_lanes(lanes(list(SERVICES)), lambda s: (order.append(s), _built(s))[1], jobs=1)
    assert order == list(SERVICES)


def test_a_failure_stops_what_has_not_started_and_is_raised_after_the_build_beside_it_ends():
    started: list[str] = []
    finished: list[str] = []
    failing, db_started = threading.Event(), threading.Event()

    def build_one(service: str) -> BuiltImage:
        started.append(service)
        if service == "storefront":
            assert db_started.wait(10)
            failing.set()
            raise KitError("building kitctl/storefront:t failed: boom")
        if service == "db":  # running when storefront fails: it is let finish, nothing starts after it
            db_started.set()
            assert failing.wait(10)
            time.sleep(0.05)
        finished.append(service)
        return _built(service)

    with pytest.raises(KitError, match="storefront:t failed: boom"):
        run_lanes(lanes(list(SERVICES)), build_one, jobs=2)
    assert sorted(started) == ["db", "storefront"] and finished == ["db"]

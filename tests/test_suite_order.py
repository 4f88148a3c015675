"""The order `make test` hands tests to its two workers (tests/conftest.py): the engine tests together on one
worker and first, then the slow modules, then the rest; no module split over both workers."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from tests.conftest import is_engine_test, pytest_collection_modifyitems, pytest_xdist_make_scheduler


class Item:
    def __init__(self, nodeid: str, *markers: str) -> None:
        self.nodeid, self.markers = nodeid, set(markers)

    def get_closest_marker(self, name: str) -> Any:
        return name if name in self.markers else None


class Worker:
    def __init__(self, name: str) -> None:
        self.sent: list[int] = []
        self.shutting_down = False
        self.gateway = SimpleNamespace(id=name)

    def send_runtest_some(self, indexes: list[int]) -> None:
        self.sent.extend(indexes)

    def shutdown(self) -> None:
        self.shutting_down = True


def test_engine_tests_first_then_slow_or_browser_modules_then_the_rest_each_in_its_order() -> None:
    items = [Item("tests/agent/test_a.py::one"), Item("tests/agent/test_a.py::two"),
             Item("tests/e2e/test_x.py::up", "e2e"), Item("tests/hq/test_b.py::fast"),
             Item("tests/hq/test_b.py::slow", "slow"), Item("tests/hq/test_c.py::page", "browser"),
             Item("tests/plugins/test_y_e2e.py::up", "e2e"), Item("tests/hq/test_d.py::quick")]
    pytest_collection_modifyitems(items)  # type: ignore[arg-type]
    assert [i.nodeid for i in items] == [
        "tests/e2e/test_x.py::up", "tests/plugins/test_y_e2e.py::up",
        "tests/hq/test_b.py::fast", "tests/hq/test_b.py::slow", "tests/hq/test_c.py::page",
        "tests/agent/test_a.py::one", "tests/agent/test_a.py::two", "tests/hq/test_d.py::quick"]


def test_an_e2e_test_outside_the_engine_folders_is_refused() -> None:
    with pytest.raises(pytest.UsageError, match="tests/hq/test_b.py::up"):
        pytest_collection_modifyitems([Item("tests/hq/test_b.py::up", "e2e")])  # type: ignore[list-item]


def test_live_monitoring_tests_without_the_engine_are_not_engine_tests() -> None:
    assert not is_engine_test("tests/monitoring/test_prometheus_live.py::t")
    assert not is_engine_test("tests/monitoring/test_fleet_alerts_live.py::t")
    assert is_engine_test("tests/monitoring/test_stack_monitoring_e2e.py::t")


def test_the_scheduler_keeps_the_engine_on_one_worker_and_the_collection_order() -> None:
    collection = ["tests/e2e/test_x.py::up", "tests/images/test_i.py::build", "tests/plugins/test_y_e2e.py::up",
                  "tests/packaging/test_wheel.py::slow",  # one test: largest-first would hand it out last
                  *(f"tests/hq/test_many.py::t{n}" for n in range(5))]
    config = SimpleNamespace(option=SimpleNamespace(loadscopereorder=True), getvalue=lambda name: ["2*popen"])
    log = SimpleNamespace(loadscopesched=lambda *args: None)
    scheduler = pytest_xdist_make_scheduler(config, log)  # type: ignore[arg-type]
    engine, other = Worker("gw0"), Worker("gw1")
    for worker in (engine, other):
        scheduler.add_node(worker)
        scheduler.add_node_collection(worker, collection)
    scheduler.schedule()
    assert engine.sent == [0, 1, 2]  # every engine test on one worker, and nothing else while they run
    # the other worker: the next units in collection order, the slow module first (largest-first would have
    # handed the five quick tests to the engine's worker and the slow one out last)
    assert other.sent == [3, 4, 5, 6, 7, 8]


def test_the_swarm_and_own_stack_modules_go_to_a_worker_of_their_own_beside_the_shared_engine() -> None:
    items = [Item("tests/e2e/test_swarm_ops.py::restore", "e2e"), Item("tests/e2e/test_up.py::up", "e2e"),
             Item("tests/e2e/test_settlement_stack.py::paid", "e2e"),
             Item("tests/e2e/test_swarm.py::replicas", "e2e"), Item("tests/hq/test_b.py::fast")]
    pytest_collection_modifyitems(items)  # type: ignore[arg-type]
    collection = [i.nodeid for i in items]
    assert collection == ["tests/e2e/test_up.py::up", "tests/e2e/test_swarm_ops.py::restore",
                          "tests/e2e/test_settlement_stack.py::paid", "tests/e2e/test_swarm.py::replicas",
                          "tests/hq/test_b.py::fast"]
    config = SimpleNamespace(option=SimpleNamespace(loadscopereorder=True), getvalue=lambda name: ["3*popen"])
    log = SimpleNamespace(loadscopesched=lambda *args: None)
    scheduler = pytest_xdist_make_scheduler(config, log)  # type: ignore[arg-type]
    engine, swarm, other = Worker("gw0"), Worker("gw1"), Worker("gw2")
    for worker in (engine, swarm, other):
        scheduler.add_node(worker)
        scheduler.add_node_collection(worker, collection)
    scheduler.schedule()
    assert (engine.sent, swarm.sent, other.sent) == ([0], [1, 2, 3], [4])

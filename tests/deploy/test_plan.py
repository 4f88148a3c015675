"""Plan/diff logic and dependency order, on plain values (no engine)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kitctl.deploy.actions import orphans, plan_services, strategy_for, summary
from kitctl.deploy.compose import parse_project
from kitctl.deploy.container_hashes import config_hash, mounts_hash
from kitctl.deploy.order import start_order, stop_order, with_dependencies
from kitctl.deploy.runner import service_steps
from kitctl.deploy.state import Running
from kitctl.deploy.upgrade import upgraded_images
from kitcore.errors import InvalidInput


def stack(tmp_path: Path, colour: str = "blue", db_image: str = "kitctl/db:1"):
    (tmp_path / "branding").mkdir(exist_ok=True)
    (tmp_path / "branding" / "theme.css").write_text(colour)
    return parse_project({
        "services": {
            "proxy": {"image": "kitctl/proxy:1", "ports": ["127.0.0.1:8080:80"],
                      "volumes": ["./branding:/srv/branding:ro"], "depends_on": {"web": {"condition": "service_healthy"}}},
            "web": {"image": "kitctl/web:1", "depends_on": ["db", "migrate"]},
            "migrate": {"image": "kitctl/web:1", "depends_on": ["db"]},
            "db": {"image": db_image, "volumes": ["data:/var/lib/postgresql/data"]},
        },
        "volumes": {"data": {}},
    }, tmp_path, tmp_path / "compose.yaml", project_name="site")


def running(project, **overrides) -> dict[str, Running]:
    found = {}
    for name in project.services:
        found[name] = Running(id=f"id-{name}", name=f"site_{name}_1", service=name,
                              config_hash=config_hash(project, name), mounts_hash=mounts_hash(project, name),
                              image_id=f"sha-{project.services[name].image}", state="running", health="healthy")
    found.update(overrides)
    return found


def hashes(project):
    return {n: (config_hash(project, n), mounts_hash(project, n)) for n in project.services}


def image_ids(project):
    return {s.image: f"sha-{s.image}" for s in project.services.values()}


def test_start_order_puts_dependencies_first_and_is_stable() -> None:
    deps = {"proxy": ["web"], "web": ["db", "migrate"], "migrate": ["db"], "db": [], "agent": ["db"]}
    order = start_order(deps)
    assert order == ["db", "agent", "migrate", "web", "proxy"]
    assert stop_order(deps) == list(reversed(order))


def test_cycles_are_refused_naming_the_services() -> None:
    with pytest.raises(InvalidInput, match="cycle between: a, b"):
        start_order({"a": ["b"], "b": ["a"], "c": []})


def test_with_dependencies_is_transitive_and_checks_names() -> None:
    deps = {"proxy": ["web"], "web": ["db"], "db": [], "agent": ["db"]}
    assert with_dependencies(deps, ["proxy"]) == {"proxy", "web", "db"}
    with pytest.raises(InvalidInput, match="unknown service 'nope'"):
        with_dependencies(deps, ["nope"])


def test_first_deploy_creates_everything_in_order(tmp_path: Path) -> None:
    project = stack(tmp_path)
    actions = plan_services(project, hashes(project), {}, image_ids(project))
    assert [(a.service, a.kind) for a in actions] == [("db", "create"), ("migrate", "create"), ("web", "create"),
                                                      ("proxy", "create")]


def test_unchanged_stack_is_a_no_op(tmp_path: Path) -> None:
    project = stack(tmp_path)
    actions = plan_services(project, hashes(project), running(project), image_ids(project))
    assert all(a.kind == "keep" for a in actions)
    assert summary(actions).startswith("nothing to do")


def test_colour_change_recreates_only_the_service_mounting_it(tmp_path: Path) -> None:
    project = stack(tmp_path)
    before = running(project)
    changed = stack(tmp_path, colour="red")
    actions = {a.service: a for a in plan_services(changed, hashes(changed), before, image_ids(changed))}
    assert actions["proxy"].kind == "recreate" and actions["proxy"].reason == "mounted files changed"
    assert {n for n, a in actions.items() if a.kind != "keep"} == {"proxy"}


def test_config_and_image_changes_recreate(tmp_path: Path) -> None:
    project = stack(tmp_path)
    before = running(project)
    upgraded = stack(tmp_path, db_image="kitctl/db:2")
    actions = {a.service: a for a in plan_services(upgraded, hashes(upgraded), before, image_ids(upgraded))}
    assert actions["db"].kind == "recreate" and actions["db"].reason == "config changed"
    ids = image_ids(project) | {"kitctl/web:1": "sha-rebuilt"}
    actions = {a.service: a for a in plan_services(project, hashes(project), before, ids)}
    assert actions["web"].reason == "image changed" and actions["migrate"].reason == "image changed"
    assert actions["db"].kind == "keep"


def test_stopped_container_is_started_not_recreated(tmp_path: Path) -> None:
    project = stack(tmp_path)
    before = running(project)
    stopped = Running(**{**before["web"].__dict__, "state": "exited"})
    actions = {a.service: a for a in plan_services(project, hashes(project), {**before, "web": stopped}, image_ids(project))}
    assert actions["web"].kind == "start"
    assert [type(s).__name__ for s in service_steps(project, actions["web"])] == ["StartContainer", "WaitReady"]


def test_strategy_protects_ports_and_data_volumes(tmp_path: Path) -> None:
    project = stack(tmp_path)
    assert strategy_for(project.services["proxy"]) == "stop-first"  # host port
    assert strategy_for(project.services["db"]) == "stop-first"  # writable data volume
    assert strategy_for(project.services["web"]) == "start-first"


def test_recreate_steps_keep_the_old_container_until_the_end(tmp_path: Path) -> None:
    project = stack(tmp_path)
    before = running(project)
    changed = stack(tmp_path, colour="red", db_image="kitctl/db:2")
    actions = {a.service: a for a in plan_services(changed, hashes(changed), before, image_ids(changed))}
    names = [type(s).__name__ for s in service_steps(changed, actions["db"])]
    assert names == ["RenameOld", "CreateContainer", "StopOld", "StartContainer", "WaitReady"]
    web = plan_services(changed, hashes(changed), {**before, "web": Running(**{**before["web"].__dict__, "config_hash": "old"})},
                        image_ids(changed))
    web_steps = [type(s).__name__ for s in service_steps(changed, next(a for a in web if a.service == "web"))]
    assert web_steps == ["RenameOld", "CreateContainer", "StartContainer", "WaitReady"]  # start-first: no StopOld


def test_orphans_are_reported(tmp_path: Path) -> None:
    project = stack(tmp_path)
    extra = Running("id-x", "site_old_1", "old", "", "", "", "running", None)
    assert [o.service for o in orphans(project, {**running(project), "old": extra})] == ["old"]


def test_upgrade_moves_only_kit_images(tmp_path: Path) -> None:
    project = parse_project({"services": {
        "a": {"image": "127.0.0.1:5000/kitctl/storefront:0.1.0"},
        "b": {"image": "kitctl/db:0.1.0"},
        "c": {"image": "library/redis:7"},
    }}, tmp_path, tmp_path / "compose.yaml", project_name="p")
    assert upgraded_images(project, "0.2.0") == {"a": "127.0.0.1:5000/kitctl/storefront:0.2.0", "b": "kitctl/db:0.2.0"}
    with pytest.raises(InvalidInput):
        upgraded_images(project, "../evil")

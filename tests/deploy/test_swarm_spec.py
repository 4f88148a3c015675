"""What a rendered project becomes on a Swarm (kitctl.deploy.swarm): plain values, no engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from kitctl.deploy.compose import parse_project
from kitctl.deploy.swarm.converge import verdict
from kitctl.deploy.swarm.params import service_kwargs
from kitctl.deploy.swarm.definitions import MAX_CONFIG_BYTES, SPEC_HASH, stack_defs
from kitcore.errors import InvalidInput

SITE = "s-1234"


def project(tmp_path: Path, colour: str = "#112233", replicas: int = 2):
    (tmp_path / "secrets").mkdir(exist_ok=True)
    (tmp_path / "secrets" / "db_password").write_text("pw")
    (tmp_path / "branding").mkdir(exist_ok=True)
    (tmp_path / "branding" / "theme.css").write_text(f":root {{ --primary: {colour} }}")
    (tmp_path / "branding" / "logo.png").write_bytes(b"png")
    (tmp_path / "site.json").write_text('{"colour": "%s"}' % colour)
    labels = {"com.kitctl.site": SITE}
    return parse_project({
        "services": {
            "db": {"image": "kitctl/db:1", "secrets": ["db_password"], "volumes": ["db-data:/var/lib/postgresql/data"],
                   "labels": labels},
            "storefront": {"image": "kitctl/storefront:1", "depends_on": {"db": {"condition": "service_healthy"}},
                           "volumes": ["./site.json:/etc/kit/site.json:ro"], "labels": labels,
                           "deploy": {"replicas": replicas}},
            "proxy": {"image": "kitctl/proxy:1", "ports": ["127.0.0.1:8080:80"], "labels": labels,
                      "volumes": ["./branding:/srv/branding:ro"],
                      "healthcheck": {"test": ["CMD", "true"], "interval": "5s", "timeout": "5s", "retries": 5}},
        },
        "volumes": {"db-data": {}},
        "secrets": {"db_password": {"file": "./secrets/db_password"}},
    }, tmp_path, tmp_path / "compose.yaml")


IDS = {"kitctl/db:1": "sha256:db", "kitctl/storefront:1": "sha256:sf", "kitctl/proxy:1": "sha256:px"}


def test_files_become_configs_and_secrets_with_the_service_users_owner(tmp_path: Path) -> None:
    defs = stack_defs(project(tmp_path), {"db": (999, 999, 0o400)}, IDS)
    proxy, db = defs.services["proxy"], defs.services["db"]
    assert sorted(c.target for c in proxy.configs) == ["/srv/branding/logo.png", "/srv/branding/theme.css"]
    assert [(s.target, s.uid, s.gid, s.mode) for s in db.secrets] == [("db_password", 999, 999, 0o400)]
    assert defs.files[db.secrets[0].name].data == b"pw" and defs.files[db.secrets[0].name].kind == "secret"
    assert defs.network == f"kit-{SITE}_default" and proxy.networks == (defs.network,)


def test_replicas_pinning_ports_and_update_order(tmp_path: Path) -> None:
    defs = stack_defs(project(tmp_path, replicas=3), {}, IDS)
    db, storefront, proxy = (defs.services[n] for n in ("db", "storefront", "proxy"))
    assert storefront.replicas == 3 and proxy.replicas == 1
    assert db.constraints == (f"node.labels.com.kitctl.db.{SITE}==true",) and not storefront.constraints
    assert (storefront.order, db.order, proxy.order) == ("start-first", "stop-first", "stop-first")
    assert proxy.ports == ((8080, 80, "tcp"),)
    assert storefront.image == "sha256:sf" and dict(storefront.labels)["io.kitctl.image"] == "kitctl/storefront:1"


def test_a_colour_change_changes_only_the_services_that_read_it(tmp_path: Path) -> None:
    before = stack_defs(project(tmp_path), {}, IDS)
    after = stack_defs(project(tmp_path, colour="#00aa55"), {}, IDS)
    changed = {n for n in before.services if before.services[n].spec_hash() != after.services[n].spec_hash()}
    assert changed == {"storefront", "proxy"}
    assert stack_defs(project(tmp_path, colour="#00aa55"), {}, IDS).services["proxy"].spec_hash() == \
        after.services["proxy"].spec_hash()  # the same inputs, the same spec: a second `up` is a no-op


def test_a_file_too_large_for_a_swarm_config_is_one_line(tmp_path: Path) -> None:
    p = project(tmp_path)
    (tmp_path / "branding" / "huge.png").write_bytes(b"x" * (MAX_CONFIG_BYTES + 1))
    with pytest.raises(InvalidInput, match="larger than a Swarm config may be"):
        stack_defs(p, {}, IDS)


def test_engine_arguments_are_dnsrr_host_ports_and_a_monitored_rolling_update(tmp_path: Path) -> None:
    defs = stack_defs(project(tmp_path), {}, IDS)
    ids = {name: f"id-{name}" for name in defs.files}
    kwargs = service_kwargs(defs.services["proxy"], ids)
    assert kwargs["endpoint_spec"]["Mode"] == "dnsrr"
    assert kwargs["endpoint_spec"]["Ports"] == [{"PublishedPort": 8080, "TargetPort": 80, "Protocol": "tcp",
                                                 "PublishMode": "host"}]
    update = kwargs["update_config"]
    assert update["FailureAction"] == "rollback" and update["Order"] == "stop-first" and update["Monitor"] > 0
    assert kwargs["labels"][SPEC_HASH] == defs.services["proxy"].spec_hash()
    networks = kwargs["task_template"]["Networks"]
    assert [(n["Target"], n["Aliases"]) for n in networks] == [(defs.network, ["proxy"])]
    storefront = service_kwargs(defs.services["storefront"], ids)
    assert storefront["mode"].replicas == 2 and storefront["update_config"]["Order"] == "start-first"


def task(state: str, desired: str = "running", image: str = "a", err: str = "") -> dict:
    return {"DesiredState": desired, "Status": {"State": state, "Err": err},
            "Spec": {"ContainerSpec": {"Image": image}}}


def service(replicas: int = 2, update: str | None = None, image: str = "a") -> dict:
    found = {"Spec": {"Mode": {"Replicated": {"Replicas": replicas}}, "TaskTemplate": {"ContainerSpec": {"Image": image}}},
             "Version": {"Index": 7}}
    if update:
        found["UpdateStatus"] = {"State": update, "Message": f"update {update}"}
    return found


@pytest.mark.parametrize("svc, tasks, state", [
    (service(), [task("running"), task("running")], "converged"),
    (service(), [task("running"), task("starting")], "waiting"),  # not yet healthy
    (service(), [task("running"), task("running"), task("shutdown", "shutdown")], "converged"),
    (service(image="b"), [task("running"), task("running")], "waiting"),  # old tasks still run the old spec
    (service(update="updating"), [task("running"), task("running")], "waiting"),
    (service(update="rollback_completed"), [task("running"), task("running")], "rolled_back"),
    (service(update="paused"), [task("running")], "rolled_back"),
    (service(), [task("running"), task("failed", err="exit 3")], "waiting"),
])
def test_converged_only_with_every_replica_running_the_current_spec(svc, tasks, state) -> None:
    assert verdict(svc, tasks).state == state


def test_a_waiting_verdict_names_the_last_task_error() -> None:
    found = verdict(service(), [task("running"), task("rejected", "shutdown", err="no suitable node")])
    assert found.detail == "1/2 tasks running (last error: no suitable node)"


def test_the_status_of_an_earlier_update_says_nothing_about_this_one() -> None:
    """After last time's rollback, a new update is waited for, not taken for rolled back at once."""
    earlier = {"State": "rollback_completed", "Message": "rolled back"}
    svc = service(image="new") | {"UpdateStatus": earlier}
    assert verdict(svc, [task("running", image="old"), task("running", image="old")], earlier).state == "waiting"
    assert verdict(svc, [task("running", image="new"), task("running", image="new")], earlier).state == "converged"
    assert verdict(svc, [task("running", image="old")], None).state == "rolled_back"


class FakeApi:
    """The few Engine API answers swarm_up reads before it changes anything."""

    def __init__(self, swarm: dict, services: list[dict]) -> None:
        self.swarm, self.existing, self.calls = swarm, services, []

    def info(self) -> dict:
        return {"Swarm": self.swarm}

    def inspect_image(self, ref: str) -> dict:
        return {"Id": IDS[ref], "Config": {"User": "10001:10001"}}

    def services(self, filters: dict) -> list[dict]:
        return self.existing

    def __getattr__(self, name: str):  # anything else would change the engine
        self.calls.append(name)
        raise AssertionError(f"{name} called")


MANAGER = {"LocalNodeState": "active", "ControlAvailable": True, "NodeID": "n1"}


def test_swarm_up_refuses_an_engine_that_is_no_manager(tmp_path: Path) -> None:
    from kitctl.deploy.swarm.rollout import swarm_up

    with pytest.raises(InvalidInput, match="needs a Swarm manager"):
        swarm_up(FakeApi({"LocalNodeState": "inactive"}, []), project(tmp_path), 10)


def test_a_second_swarm_up_with_the_same_spec_changes_nothing(tmp_path: Path) -> None:
    from kitctl.deploy.swarm.rollout import swarm_up
    from kitctl.deploy.swarm.params import service_kwargs

    p = project(tmp_path)
    defs = stack_defs(p, {"db": (10001, 10001, 0o400)}, IDS)
    running = [{"ID": d.name, "Spec": {"Name": d.name, "Labels": service_kwargs(d, {n: n for n in defs.files})["labels"]}}
               for d in defs.services.values()]
    api = FakeApi(MANAGER, running)
    result = swarm_up(api, p, 10)
    assert result.nothing_to_do and sorted(result.kept) == ["db", "proxy", "storefront"] and api.calls == []
    running[1]["Spec"]["Labels"][SPEC_HASH] = "older"
    with pytest.raises(AssertionError, match="called"):  # one service differs: it goes on to change the engine
        swarm_up(FakeApi(MANAGER, running), p, 10)


def test_the_database_volume_carries_the_site_identity(tmp_path: Path) -> None:
    """`down` refuses a volume under the site's names that carries no site id: the engine creates it with ours."""
    defs = stack_defs(project(tmp_path), {}, IDS)
    mount = service_kwargs(defs.services["db"], {n: n for n in defs.files})["task_template"]["ContainerSpec"]["Mounts"][0]
    assert mount["Source"] == f"kit-{SITE}_db-data"
    assert mount["VolumeOptions"]["Labels"]["com.kitctl.site"] == SITE


class StatusApi:
    def __init__(self, services: list[dict], tasks: dict[str, list[dict]]) -> None:
        self.services_, self.tasks_ = services, tasks

    def info(self) -> dict:
        return {"Swarm": MANAGER}

    def services(self, filters: dict) -> list[dict]:
        return self.services_

    def tasks(self, filters: dict) -> list[dict]:
        return self.tasks_[filters["service"]]


def test_status_of_a_swarm_site_counts_tasks_and_says_when_an_update_was_rolled_back(tmp_path: Path) -> None:
    from kitctl.deploy.swarm.tasks import swarm_status

    storefront = service(replicas=2) | {"ID": "sf", "Endpoint": {}}
    storefront["Spec"] |= {"Name": f"kit-{SITE}_storefront",
                           "Labels": {"com.kitctl.service": "storefront", "io.kitctl.image": "kitctl/storefront:1"}}
    proxy = service(replicas=1, update="rollback_completed") | {"ID": "px", "Endpoint": {"Ports": [
        {"PublishedPort": 8080, "TargetPort": 80, "Protocol": "tcp"}]}}
    proxy["Spec"] |= {"Name": f"kit-{SITE}_proxy", "Labels": {"com.kitctl.service": "proxy"}}
    rows = swarm_status(StatusApi([storefront, proxy], {"sf": [task("running"), task("starting")],
                                                        "px": [task("running")]}), project(tmp_path))
    by = {r["service"]: r for r in rows}
    assert by["storefront"]["container"] == f"kit-{SITE}_storefront (1/2 tasks)" and by["storefront"]["health"] == "1/2 tasks running"
    assert by["storefront"]["image"] == "kitctl/storefront:1"
    assert by["proxy"]["health"] == "rolled back" and by["proxy"]["ports"] == ["*:8080->80/tcp"]

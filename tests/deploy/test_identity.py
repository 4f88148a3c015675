"""A site is its site id, not its folder: two sites in folders of the same name never touch each other.

The engine is faked at docker.APIClient's boundary (containers, networks and volumes with labels); the same
rules run on the real engine in tests/e2e/test_identity.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from kitcore.errors import InvalidInput
from kitcore.sitedir import SiteDir
from kitctl.deploy import labels as L
from kitctl.deploy.compose import load_project
from kitctl.deploy.identity import adopt, check_ours, find_legacy
from kitctl.deploy.operate import down, status


def write_site(root: Path, site_id: str | None) -> Path:
    """A rendered-looking site directory named `site`, its services labelled with `site_id`."""
    site = root / "site"
    site.mkdir(parents=True)
    labels = {"com.kitctl.site": site_id} if site_id else {}
    doc = {
        "services": {
            "db": {"image": "kitctl/db:1", "labels": labels,
                   "volumes": [{"type": "volume", "source": "db-data", "target": "/var/lib/postgresql/data"}]},
            "web": {"image": "kitctl/web:1", "labels": labels, "depends_on": ["db"]},
        },
        "volumes": {"db-data": {}},
    }
    SiteDir(site).compose.write_text(yaml.safe_dump(doc))
    return site


class FakeEngine:
    """Containers, networks and volumes with labels, and the calls that change them."""

    def __init__(self) -> None:
        self.containers_: dict[str, dict[str, Any]] = {}
        self.networks_: dict[str, dict[str, Any]] = {}
        self.volumes_: dict[str, dict[str, Any]] = {}
        self.changes: list[tuple[str, str]] = []

    def info(self) -> dict[str, Any]:
        return {"Swarm": {"LocalNodeState": "inactive"}}  # a single engine: `down` has no Swarm services to remove

    # -- setup ---------------------------------------------------------------------------------------
    def run(self, name: str, project: str, service: str, site: str | None, volume: str | None = None) -> None:
        labels = {L.PROJECT: project, L.SERVICE: service, L.ONEOFF: "False"} | ({L.SITE: site} if site else {})
        mounts = [{"Type": "volume", "Name": volume, "Destination": "/var/lib/postgresql/data"}] if volume else []
        self.containers_[name] = {"Id": name, "Names": [f"/{name}"], "Labels": labels, "Mounts": mounts,
                                  "Image": "x", "Ports": []}
        if volume:
            self.volumes_.setdefault(volume, {"Labels": {L.PROJECT: project} | ({L.SITE: site} if site else {})})
        self.networks_.setdefault(f"{project}_default", {"Labels": {L.PROJECT: project} | ({L.SITE: site} if site else {}),
                                                         "members": set()})
        self.networks_[f"{project}_default"]["members"].add(name)

    # -- docker.APIClient ----------------------------------------------------------------------------
    def containers(self, all: bool = False, filters: dict | None = None) -> list[dict[str, Any]]:  # noqa: A002
        wanted = [tuple(f.split("=", 1)) for f in (filters or {}).get("label", [])]
        return [c for c in self.containers_.values() if not [1 for k, v in wanted if c["Labels"].get(k) != v]]

    def networks(self, names: list[str] | None = None, filters: dict | None = None) -> list[dict[str, Any]]:
        found = [{"Id": n, "Name": n, "Labels": v["Labels"]} for n, v in self.networks_.items()]
        if names:
            found = [n for n in found if n["Name"] in names]
        if filters:
            key, _, value = filters["label"].partition("=")
            found = [n for n in found if n["Labels"].get(key) == value]
        return found

    def inspect_network(self, name: str) -> dict[str, Any]:
        return {"Containers": {m: {} for m in self.networks_[name]["members"]}}

    def inspect_volume(self, name: str) -> dict[str, Any]:
        from docker.errors import NotFound

        if name not in self.volumes_:
            raise NotFound(name)
        return self.volumes_[name]

    def inspect_container(self, name: str) -> dict[str, Any]:
        return {"State": {"Status": "running", "Running": False}}

    def stop(self, cid: str, timeout: int = 10) -> None:
        self.changes.append(("stop", cid))

    def remove_container(self, cid: str, force: bool = False, v: bool = False) -> None:
        self.changes.append(("remove", cid))
        self.containers_.pop(cid)
        for net in self.networks_.values():
            net["members"].discard(cid)

    def remove_network(self, name: str) -> None:
        self.changes.append(("remove network", name))
        del self.networks_[name]

    def remove_volume(self, name: str) -> None:
        self.changes.append(("remove volume", name))
        del self.volumes_[name]


class Client:
    def __init__(self, api: FakeEngine) -> None:
        self.api = api


def test_two_sites_in_same_named_folders_are_two_projects(tmp_path: Path) -> None:
    a = load_project(write_site(tmp_path / "a", "alpha"))
    b = load_project(write_site(tmp_path / "b", "beta"))
    assert (a.name, b.name) == ("kit-alpha", "kit-beta")
    assert a.volumes["db-data"].name == "kit-alpha_db-data" != b.volumes["db-data"].name
    assert L.resource_labels(a, L.VOLUME, "db-data")[L.SITE] == "alpha"


def test_another_sites_container_under_our_name_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    project = load_project(write_site(tmp_path, "alpha"))
    engine = FakeEngine()
    engine.run("kit-alpha_db_1", "kit-alpha", "db", "intruder")
    with pytest.raises(InvalidInput, match="belongs to site 'intruder'"):
        down(Client(engine), project, volumes=True)
    with pytest.raises(InvalidInput, match="belongs to site 'intruder'"):
        status(Client(engine), project)
    assert engine.changes == [] and "kit-alpha_db_1" in engine.containers_


def test_a_volume_of_another_site_under_our_name_is_refused(tmp_path: Path) -> None:
    project = load_project(write_site(tmp_path, "alpha"))
    engine = FakeEngine()
    engine.volumes_["kit-alpha_db-data"] = {"Labels": {L.PROJECT: "kit-alpha", L.SITE: "beta"}}
    with pytest.raises(InvalidInput, match="volume kit-alpha_db-data belongs to site 'beta'"):
        check_ours(engine, project)


def test_down_of_one_site_leaves_the_other_sites_stack_alone(tmp_path: Path) -> None:
    """The bug: both folders were called `site`, so `down --volumes` of one deleted the other's database."""
    a = load_project(write_site(tmp_path / "a", "alpha"))
    engine = FakeEngine()
    for service in ("db", "web"):
        engine.run(f"kit-alpha_{service}_1", "kit-alpha", service, "alpha",
                   "kit-alpha_db-data" if service == "db" else None)
        engine.run(f"kit-beta_{service}_1", "kit-beta", service, "beta",
                   "kit-beta_db-data" if service == "db" else None)
    down(Client(engine), a, volumes=True)
    assert set(engine.containers_) == {"kit-beta_db_1", "kit-beta_web_1"}
    assert set(engine.volumes_) == {"kit-beta_db-data"}
    assert "kit-beta_default" in engine.networks_


def test_a_site_under_its_old_folder_name_is_adopted_with_its_data(tmp_path: Path) -> None:
    """Containers of project `site` carrying this site's id are taken over; its volume keeps its name and data.
    Another site's containers under the same old name are not touched, nor the network they still use."""
    site = write_site(tmp_path, "alpha")
    project = load_project(site)
    engine = FakeEngine()
    engine.run("site_db_1", "site", "db", "alpha", "site_db-data")
    engine.run("site_web_1", "site", "web", "alpha")
    engine.run("other_1", "site", "web", "beta")  # another site that also ran as `site`
    legacy = find_legacy(engine, project)
    assert legacy is not None and legacy.volumes == {"db-data": "site_db-data"}
    assert {c["Id"] for c in legacy.containers} == {"site_db_1", "site_web_1"}
    adopt(engine, project, legacy)
    assert set(engine.containers_) == {"other_1"} and "site_default" in engine.networks_
    assert ("stop", "site_web_1") in engine.changes and engine.changes.index(("stop", "site_web_1")) < \
        engine.changes.index(("stop", "site_db_1"))  # dependents first
    adopted = load_project(site)
    assert adopted.name == "kit-alpha" and adopted.volumes["db-data"].name == "site_db-data"
    check_ours(engine, adopted)  # the kept volume carries only the old labels: it is ours by the record
    assert json.loads(SiteDir(site).adopted.read_text())["from_project"] == "site"
    assert find_legacy(engine, adopted) is None  # once


def test_down_adopts_an_old_site_first_so_volumes_finds_its_data(tmp_path: Path) -> None:
    site = write_site(tmp_path, "alpha")
    engine = FakeEngine()
    engine.run("site_db_1", "site", "db", "alpha", "site_db-data")
    down(Client(engine), load_project(site), volumes=True)
    assert engine.containers_ == {} and engine.volumes_ == {}


def test_a_stack_kitctl_did_not_render_keeps_its_folder_name(tmp_path: Path) -> None:
    project = load_project(write_site(tmp_path, None))
    assert project.name == "site" and project.site_id is None
    check_ours(FakeEngine(), project)


def test_services_with_different_site_ids_are_refused(tmp_path: Path) -> None:
    site = write_site(tmp_path, "alpha")
    doc = yaml.safe_load(SiteDir(site).compose.read_text())
    doc["services"]["web"]["labels"] = {"com.kitctl.site": "beta"}
    SiteDir(site).compose.write_text(yaml.safe_dump(doc))
    with pytest.raises(InvalidInput, match="different site ids"):
        load_project(site)


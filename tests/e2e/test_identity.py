"""Two sites in folders of the same name, side by side on the real engine (issue 14, bad case 1).

Each site is the compose project `kit-<site id>`: `up`, `status` and `down --volumes` of one leave the
other's containers and database alone. A site deployed under its old folder-named project is adopted by
the next `up` with its data. The stack is the small one of tests/deploy/stack.py (db, web, proxy).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from kitcore.sitedir import SiteDir
from kitctl.deploy.engine_exec import run_in
from tests.deploy.stack import SiteSpec, issue_test_licence, write_site
from tests.e2e.test_up import WEB_REPO, engine, free_port, get, images, registry_grant  # noqa: F401 (fixtures)
from tests.support.cli import kitctl

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


class TwinSite:
    """A site whose folder has a name another site's folder has too."""

    def __init__(self, parent: Path, folder: str, grant: dict[str, str]) -> None:
        self.id = f"e2e{uuid.uuid4().hex[:8]}"
        self.dir = parent / folder
        self.port = free_port()
        token, jwks = issue_test_licence(parent / "hq", self.id, grant)
        write_site(self.dir, SiteSpec(self.id, "Twin", self.port, f"{WEB_REPO}:1.0", site_id=self.id), token, jwks)

    @property
    def project(self) -> str:
        return f"kit-{self.id}"

    def kitctl(self, command: str, *extra: str, check: bool = True) -> Any:
        return kitctl(command, *extra, "--site-dir", str(self.dir), check=check)


def db_value(engine: Any, container: str) -> bytes:
    db = engine.containers.get(container)
    return run_in(db, ["psql", "-U", "postgres", "-d", "kit", "-tAc", "SELECT v FROM keep"]).output.strip()


def keep(engine: Any, container: str, value: str) -> None:
    db = engine.containers.get(container)
    sql = f"CREATE TABLE keep (v text); INSERT INTO keep VALUES ('{value}')"
    assert run_in(db, ["psql", "-U", "postgres", "-d", "kit", "-c", sql]).exit_code == 0


def project_containers(engine: Any, project: str) -> set[str]:
    return {c.name for c in engine.containers.list(all=True, filters={"label": f"com.docker.compose.project={project}"})}


@pytest.fixture
def twins(tmp_path: Path, images, registry_grant) -> Iterator[tuple[TwinSite, TwinSite]]:
    a, b = TwinSite(tmp_path / "a", "site", registry_grant), TwinSite(tmp_path / "b", "site", registry_grant)
    yield a, b
    for s in (a, b):
        s.kitctl("down", "--volumes", "--yes", check=False)


def test_two_same_named_site_folders_never_touch_each_other(twins, engine: Any) -> None:
    a, b = twins
    a.kitctl("up")
    keep(engine, f"{a.project}_db_1", "alpha data")
    planned = b.kitctl("up", "--dry-run").stdout
    assert a.project not in planned
    b.kitctl("up")
    assert get(f"http://127.0.0.1:{a.port}/")[0] == 200 and get(f"http://127.0.0.1:{b.port}/")[0] == 200
    status = json.loads(b.kitctl("status", "--json").stdout)
    assert status["project"] == b.project
    assert {s["container"] for s in status["services"]} == project_containers(engine, b.project)
    before = {c.name: c.id for c in engine.containers.list(filters={"label": f"com.docker.compose.project={a.project}"})}
    b.kitctl("down", "--volumes", "--yes")
    after = {c.name: c.id for c in engine.containers.list(filters={"label": f"com.docker.compose.project={a.project}"})}
    assert after == before and len(after) == 3
    assert db_value(engine, f"{a.project}_db_1") == b"alpha data"
    assert project_containers(engine, b.project) == set()
    assert engine.volumes.list(filters={"label": f"com.kitctl.site={b.id}"}) == []


def test_another_sites_container_under_our_name_is_a_one_line_refusal(twins, engine: Any) -> None:
    a, b = twins
    a.kitctl("up")
    doc = yaml.safe_load(SiteDir(b.dir).compose.read_text())
    doc["name"] = a.project  # b pretends to be a's project: a's containers carry a's site id, not b's
    SiteDir(b.dir).compose.write_text(yaml.safe_dump(doc))
    before = {c.name: c.id for c in engine.containers.list(all=True, filters={"label": f"com.kitctl.site={a.id}"})}
    for command in (["up"], ["down", "--volumes", "--yes"], ["status"], ["logs", "db"]):
        refused = b.kitctl(*command, check=False)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert f"belongs to site '{a.id}'" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    after = {c.name: c.id for c in engine.containers.list(all=True, filters={"label": f"com.kitctl.site={a.id}"})}
    assert after == before


def test_a_site_under_its_old_folder_name_is_adopted_with_its_data(tmp_path: Path, images, registry_grant,
                                                                    engine: Any) -> None:
    old = TwinSite(tmp_path, f"old{uuid.uuid4().hex[:6]}", registry_grant)
    compose = SiteDir(old.dir).compose
    modern = compose.read_text()
    try:
        doc = yaml.safe_load(modern)
        doc["name"] = old.dir.name  # how kitctl named it before: the folder's name, site label on the services
        compose.write_text(yaml.safe_dump(doc))
        old.kitctl("up")
        keep(engine, f"{old.dir.name}_db_1", "kept across adoption")
        compose.write_text(modern)
        status = old.kitctl("status").stdout
        assert "redeploy needed" in status and old.dir.name in status
        adopted = old.kitctl("up").stdout
        assert "adopting" in adopted
        assert project_containers(engine, old.dir.name) == set()
        assert db_value(engine, f"{old.project}_db_1") == b"kept across adoption"
        mounts = engine.containers.get(f"{old.project}_db_1").attrs["Mounts"]
        assert [m["Name"] for m in mounts if m["Type"] == "volume"] == [f"{old.dir.name}_db-data"]
        assert get(f"http://127.0.0.1:{old.port}/")[0] == 200
        assert "nothing to do" in old.kitctl("up").stdout
    finally:
        old.kitctl("down", "--volumes", "--yes", check=False)
        compose.write_text(yaml.safe_dump({**yaml.safe_load(modern), "name": old.dir.name}))
        old.kitctl("down", "--volumes", "--yes", check=False)
    assert engine.volumes.list(filters={"name": old.dir.name}) == []

"""A backup carries every volume the stack needs but the database's (the proxy's certificates and local CA),
and restore puts each back into a volume of the stack before anything starts.

The Engine API is faked at docker-py's boundary; the real round trip is
tests/e2e/test_deploy_paths.py.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

from kitctl.deploy.backup import backup
from kitctl.deploy.backup_archive import read_archive
from kitctl.deploy.backup_volumes import seed_volumes, volume_mounts
from kitctl.deploy.compose import load_project
from tests.security.backup_support import FakeClient, make_site


def test_every_volume_but_the_databases_is_backed_up_through_the_engine(tmp_path: Path) -> None:
    site, _key = make_site(tmp_path)
    project = load_project(site)
    assert volume_mounts(project, "db") == {"proxy-data": ("proxy", "/data")}
    client = FakeClient(b"PGDMP dump")
    backup(client, project, tmp_path / "b.tgz", recipients=None)  # type: ignore[arg-type]
    assert ["get_archive", "/data"] in client.api.commands
    manifest = read_archive(tmp_path / "b.tgz", tmp_path / "out")
    assert manifest["volumes"]["proxy-data"]["target"] == "/data"
    with tarfile.open(tmp_path / "out" / "volumes" / "proxy-data.tar") as tar:
        key = tar.getmember("data/caddy/pki/authorities/local/root.key")
    assert (key.uid, key.mode) == (999, 0o600)


class SeedingAPI:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def inspect_volume(self, name: str) -> None:
        from docker.errors import NotFound

        raise NotFound(name)

    def create_volume(self, name: str, driver: Any = None, driver_opts: Any = None, labels: Any = None) -> None:
        self.calls.append(("create_volume", name, labels))

    def create_host_config(self, **kwargs: Any) -> dict[str, Any]:
        return kwargs

    def create_container(self, image: str, **kwargs: Any) -> dict[str, str]:
        self.calls.append(("create_container", image, kwargs["host_config"]["mounts"][0]["Source"]))
        return {"Id": "helper"}

    def put_archive(self, container: str, path: str, data: bytes) -> bool:
        self.calls.append(("put_archive", container, path, len(data)))
        return True

    def start(self, container: str) -> None:
        raise AssertionError("the unpacking container is never started")

    def remove_container(self, container: str, force: bool = False, v: bool = False) -> None:
        self.calls.append(("remove_container", container, v))


class Notes:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def note(self, text: str) -> None:
        self.lines.append(text)

    def warn(self, text: str) -> None:
        self.lines.append(f"warning: {text}")


def test_restore_fills_the_stacks_volume_before_anything_starts(tmp_path: Path) -> None:
    site, _key = make_site(tmp_path)
    project = load_project(site)
    (tmp_path / "volumes").mkdir()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.addfile(tarfile.TarInfo("data"))
    (tmp_path / "volumes" / "proxy-data.tar").write_bytes(buffer.getvalue())
    api = SeedingAPI()
    client = type("Client", (), {"api": api})()
    volumes = {"proxy-data": {"file": "volumes/proxy-data.tar", "target": "/data", "service": "proxy"},
               "gone": {"file": "volumes/gone.tar", "target": "/x", "service": "proxy"}}
    notes = Notes()
    seed_volumes(client, project, volumes, tmp_path, "kitctl/db:0.1.0", notes)  # type: ignore[arg-type]
    volume = project.volumes["proxy-data"].name
    created = [c for c in api.calls if c[0] == "create_volume"]
    assert [c[1] for c in created] == [volume]
    assert json.dumps(created[0][2]).count(project.name) >= 1  # the stack's labels: `down --volumes` finds it
    assert api.calls[1:] == [("create_container", "kitctl/db:0.1.0", volume),
                             ("put_archive", "helper", "/", len(buffer.getvalue())),
                             ("remove_container", "helper", True)]  # v: the db image's VOLUME goes with it
    assert any("'gone'" in line and line.startswith("warning:") for line in notes.lines)

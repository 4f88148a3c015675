"""The site's copy on an ssh:// engine's host read through the Engine API (no SSH session, no shell), and the
no-op check through a persistent master's forwarded engine socket deciding as the local check does.

The engine is faked at its HTTP boundary; on the real sshd and engine: tests/e2e/test_up.py::test_the_same_through_ssh.
"""

from __future__ import annotations

import base64
import io
import json
import tarfile
from pathlib import Path

from kitctl.deploy import noop
from kitctl.deploy.compose import Project
from kitctl.deploy.copy_reader import MOUNT, copied_digest, reader_name
from kitctl.deploy.engine_socket import EngineSocket
from kitctl.deploy.remote import MARKER, site_digest
from tests.deploy.test_ssh_noop import FakeEngine, _listed, _site

COPY = "/srv/kitctl/shop"


def _tar(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class ReaderEngine(FakeEngine):
    """The engine with a copy reader binding `source` (None: no reader), and the marker it finds there (None: no
    copy there, the engine cannot mount the bind)."""

    def __init__(self, listed: list[dict], source: str | None, marker: bytes | None, project: str = "shop") -> None:
        super().__init__(listed)
        self.source, self.marker = source, marker
        self.reader = reader_name(project, source) if source else None
        self.mtime = "2026-12-06T19:00:00.123456789Z"

    def _archive(self, target: str) -> bool:
        return self.reader is not None and target.split("?")[0].endswith(f"/containers/{self.reader}/archive")

    def request(self, method: str, target: str, body=None, headers=None) -> tuple[int, bytes]:
        if self._archive(target):
            self.requests.append((method, target))
            if self.marker is None:
                return 500, b'{"message":"bind source path does not exist"}'
            return 200, _tar(MARKER, self.marker)
        return super().request(method, target, body, headers)

    def head(self, target: str) -> tuple[int, dict[str, str]]:
        self.requests.append(("HEAD", target))
        if not self._archive(target) or self.marker is None:
            return 404, {}
        stat = {"name": MARKER, "size": len(self.marker), "mode": 420, "mtime": self.mtime, "linkTarget": ""}
        return 200, {"X-Docker-Container-Path-Stat": base64.b64encode(json.dumps(stat).encode()).decode()}


def test_the_engine_reads_the_copys_marker_through_the_reader_container() -> None:
    engine = ReaderEngine([], COPY, b"abc123\n")
    assert copied_digest(EngineSocket("ssh://x", client=engine), "shop", COPY) == "abc123"
    assert engine.requests[-1] == ("GET", f"/v1.41/containers/{reader_name('shop', COPY)}/archive?path={MOUNT}/{MARKER}")


def test_no_reader_another_directory_or_a_removed_copy_reads_as_no_copy() -> None:
    for engine in (ReaderEngine([], None, b"abc"), ReaderEngine([], "/srv/elsewhere", b"abc"),
                   ReaderEngine([], COPY, None)):
        assert copied_digest(EngineSocket("ssh://x", client=engine), "shop", COPY) is None


def _forwarded(monkeypatch, project: Project, engine: FakeEngine) -> noop.Observed:
    import kitctl.deploy.noop as module

    monkeypatch.setattr(module, "EngineSocket", lambda target: EngineSocket(target, client=engine))
    return noop.observe_forwarded("unix:///run/forwarded.sock", project, COPY)


def test_through_the_master_an_unchanged_stack_and_copy_is_a_no_op_and_any_copy_drift_is_not(
        tmp_path: Path, monkeypatch) -> None:
    project = _site(tmp_path)
    current = site_digest(tmp_path).encode() + b"\n"
    observed = _forwarded(monkeypatch, project, ReaderEngine(_listed(project), COPY, current, project.name))
    found = noop.decide(tmp_path, project, observed)
    assert found is not None and found.message.startswith("nothing to do")
    for source, marker in ((COPY, b"an-older-copy\n"), (COPY, None), ("/srv/elsewhere", current), (None, None)):
        observed = _forwarded(monkeypatch, project, ReaderEngine(_listed(project), source, marker, project.name))
        assert not observed.site_copy_current and noop.decide(tmp_path, project, observed) is None


def test_the_markers_content_is_read_once_then_its_stat_alone_until_it_is_written_again(
        tmp_path: Path, monkeypatch) -> None:
    """Reading a file costs the engine about three times its stat: once the content matched, a HEAD decides
    until the marker changes (another sync rewrote it: read again, and a different digest is not current)."""
    project = _site(tmp_path)
    engine = ReaderEngine(_listed(project), COPY, site_digest(tmp_path).encode() + b"\n", project.name)
    reads = lambda: [m for m, target in engine.requests if "/archive" in target]  # noqa: E731
    assert _forwarded(monkeypatch, project, engine).site_copy_current
    assert reads() == ["HEAD", "GET"]
    assert _forwarded(monkeypatch, project, engine).site_copy_current
    assert reads() == ["HEAD", "GET", "HEAD"]
    engine.marker, engine.mtime = b"written-by-another-sync\n", "2026-12-06T19:05:00.5Z"
    assert not _forwarded(monkeypatch, project, engine).site_copy_current
    assert reads() == ["HEAD", "GET", "HEAD", "HEAD", "GET"]


class ReaderApi:
    """docker-py's APIClient as `ensure_reader` uses it: the project's readers, and what it creates and removes."""

    def __init__(self, readers: list[dict]) -> None:
        self.readers, self.created, self.removed = readers, [], []

    def containers(self, all: bool = False, filters: dict | None = None) -> list[dict]:  # noqa: A002
        assert "io.kitctl.role=site-copy-reader" in filters["label"]
        return self.readers

    def remove_container(self, cid: str, force: bool = False, v: bool = False) -> None:
        assert v, "a reader is removed with the anonymous volumes its image declares"
        self.removed.append(cid)

    def create_host_config(self, mounts: list) -> dict:
        return {"Mounts": mounts}

    def create_container(self, image: str, **kwargs) -> None:
        self.created.append((image, kwargs))


def test_one_reader_per_project_binding_the_copy_read_only_and_replaced_when_the_dir_or_image_changes(
        tmp_path: Path) -> None:
    from kitctl.deploy.copy_reader import ensure_reader

    project = _site(tmp_path)
    name = reader_name(project.name, COPY)
    current = {"Id": "r1", "Names": [f"/{name}"], "Image": "kitctl/proxy:1"}
    api = ReaderApi([current])
    ensure_reader(api, project, COPY)
    assert api.created == [] and api.removed == []
    api = ReaderApi([{**current, "Image": "kitctl/proxy:0"}, {"Id": "r2", "Names": ["/other"], "Image": "x"}])
    ensure_reader(api, project, COPY)
    assert api.removed == ["r1", "r2"]
    [(image, made)] = api.created
    [mount] = made["host_config"]["Mounts"]
    assert image == "kitctl/proxy:1" and made["name"] == name and made["network_disabled"]
    assert (mount["Source"], mount["Target"], mount["Type"], mount["ReadOnly"]) == (COPY, MOUNT, "bind", True)
    assert made["labels"]["com.docker.compose.oneoff"] == "True"  # never one of the stack's services
    assert made["labels"]["com.docker.compose.service"] not in project.services

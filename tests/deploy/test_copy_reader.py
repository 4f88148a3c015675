"""The site's copy on an ssh:// engine's host read through the Engine API (no SSH session, no shell), and the
no-op check through a persistent master's forwarded engine socket deciding as the local check does.

The engine is faked at its HTTP boundary; on the real sshd and engine: tests/e2e/test_up.py::test_the_same_through_ssh.
"""

from __future__ import annotations

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
    """The engine with the copy reader: its bind source and the marker it reads there (None: no copy)."""

    def __init__(self, listed: list[dict], source: str | None, marker: bytes | None, project: str = "shop") -> None:
        super().__init__(listed)
        self.source, self.marker, self.reader = source, marker, reader_name(project)

    def request(self, method: str, target: str, body=None, headers=None) -> tuple[int, bytes]:
        path = target.split("?")[0]
        if path.endswith(f"/containers/{self.reader}/json"):
            self.requests.append((method, target))
            return (404, b"{}") if self.source is None else (200, json.dumps({"Mounts": [{"Source": self.source}]}).encode())
        if path.endswith(f"/containers/{self.reader}/archive"):
            self.requests.append((method, target))
            if self.marker is None:
                return 500, b'{"message":"bind source path does not exist"}'
            return 200, _tar(MARKER, self.marker)
        return super().request(method, target, body, headers)


def test_the_engine_reads_the_copys_marker_through_the_reader_container() -> None:
    engine = ReaderEngine([], COPY, b"abc123\n")
    assert copied_digest(EngineSocket("ssh://x", client=engine), "shop", COPY) == "abc123"
    assert engine.requests[-1] == ("GET", f"/v1.41/containers/shop_kitctl_copy/archive?path={MOUNT}/{MARKER}")


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

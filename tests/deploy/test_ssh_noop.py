"""The no-op check of `kitctl up` over ssh://: one connection, and no drift slips through.

The engine's host is faked at its boundary (the SSH connection: a shell
command's output and the Engine API answers on the dial-stdio channel); the
decision is the one the local check and the full path make. On the real
engine and sshd: tests/e2e/test_ssh_host.py and bench/ssh_noop_bench.py.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from kitctl.deploy import labels as L
from kitctl.deploy import noop
from kitctl.deploy.compose import Project, load_project
from kitctl.deploy.container_hashes import config_hash, mounts_hash
from kitctl.deploy.remote import site_digest
from kitctl.deploy.state import OLD_SUFFIX

TARGET = "ssh://root@127.0.0.1:2222"
IMAGES = {"kitctl/proxy:1": "sha256:proxy", "kitctl/web:1": "sha256:web"}


def _site(tmp_path: Path) -> Project:
    (tmp_path / "branding").mkdir()
    (tmp_path / "branding" / "theme.css").write_text("blue")
    (tmp_path / "compose.yaml").write_text(
        "services:\n"
        "  proxy:\n    image: kitctl/proxy:1\n    volumes: ['./branding:/srv/branding:ro']\n    depends_on: [web]\n"
        "  web:\n    image: kitctl/web:1\n")
    return load_project(tmp_path)


def _listed(project: Project, **changes: dict[str, str]) -> list[dict]:
    """The engine's container list for a stack deployed from `project` (then changed as asked, per service)."""
    listed = []
    for name, service in project.services.items():
        labels = {L.PROJECT: project.name, L.SERVICE: name, L.CONFIG_HASH: config_hash(project, name),
                  L.MOUNTS_HASH: mounts_hash(project, name)}
        entry = {"Id": f"id-{name}", "Names": [f"/{L.container_name(project.name, name)}"], "Labels": labels,
                 "ImageID": IMAGES[service.image], "State": "running", "Status": "Up 3 minutes"}
        for key, value in changes.get(name, {}).items():
            (labels if key.startswith(("com.", "io.")) else entry)[key] = value
        listed.append(entry)
    return listed


class FakeEngine:
    """The Engine API answers behind `docker system dial-stdio` (an `EngineSocket` HTTP client)."""

    def __init__(self, listed: list[dict]) -> None:
        self.listed, self.requests = listed, []

    def request(self, method: str, target: str, body=None, headers=None) -> tuple[int, bytes]:
        self.requests.append((method, target))
        path = target.split("?")[0]
        if path.endswith("/containers/json"):
            return 200, json.dumps(self.listed).encode()
        for ref, image_id in IMAGES.items():
            if path.endswith(f"/images/{ref}/json"):
                return 200, json.dumps({"Id": image_id}).encode()
        return 404, b"{}"

    def close(self) -> None:
        pass


class FakeHost:
    """The engine's host over SSH: what the site copy's marker holds, and the engine."""

    connections: list[FakeHost] = []

    def __init__(self, target: str, marker: str, engine: FakeEngine) -> None:
        self.target, self.marker, self.engine, self.commands = target, marker, engine, []
        FakeHost.connections.append(self)

    def __enter__(self) -> FakeHost:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def open(self, command: str, spare: bool = False) -> None:
        self.commands.append(command)

    def result(self) -> tuple[str, FakeEngine]:
        return self.marker, self.engine


def _observe(monkeypatch, project: Project, marker: str, listed: list[dict]) -> noop.Observed:
    import kitctl.deploy.ssh_engine as ssh_engine

    engine = FakeEngine(listed)
    FakeHost.connections = []
    monkeypatch.setattr(ssh_engine, "SSHHost", lambda target: FakeHost(target, marker, engine))
    return noop.observe_over_session(TARGET, project, "/srv/kitctl/shop")


def test_an_unchanged_remote_stack_is_a_no_op_over_one_connection(tmp_path: Path, monkeypatch) -> None:
    project = _site(tmp_path)
    observed = _observe(monkeypatch, project, site_digest(tmp_path) + "\n", _listed(project))
    found = noop.decide(tmp_path, project, observed)
    assert found is not None and found.message.startswith("nothing to do")
    [host] = FakeHost.connections
    assert host.commands == ["cat /srv/kitctl/shop/.kitctl-synced 2>/dev/null || true"]
    assert [path.split("?")[0] for _, path in engine_requests(host)] == [
        "/v1.41/containers/json", "/v1.41/images/kitctl/proxy:1/json", "/v1.41/images/kitctl/web:1/json"]


def engine_requests(host: FakeHost) -> list[tuple[str, str]]:
    return host.engine.requests


@pytest.mark.parametrize("changes", [
    {"web": {L.CONFIG_HASH: "edited-by-hand"}},
    {"proxy": {L.MOUNTS_HASH: "older-branding"}},
    {"web": {"ImageID": "sha256:rebuilt"}},
    {"web": {"State": "exited", "Status": "Exited (1) 2 minutes ago"}},
])
def test_any_drift_of_a_remote_container_is_not_a_no_op(tmp_path: Path, monkeypatch, changes) -> None:
    project = _site(tmp_path)
    observed = _observe(monkeypatch, project, site_digest(tmp_path), _listed(project, **changes))
    assert noop.decide(tmp_path, project, observed) is None


def test_a_missing_or_set_aside_remote_container_or_a_missing_image_is_not_a_no_op(tmp_path: Path, monkeypatch) -> None:
    project = _site(tmp_path)
    observed = _observe(monkeypatch, project, site_digest(tmp_path), _listed(project)[:1])
    assert noop.decide(tmp_path, project, observed) is None
    leftover = {**_listed(project)[1], "Id": "id-old", "Names": [f"/{L.container_name(project.name, 'web')}{OLD_SUFFIX}"]}
    observed = _observe(monkeypatch, project, site_digest(tmp_path), [*_listed(project), leftover])
    assert noop.decide(tmp_path, project, observed) is None  # an interrupted update: the full path tidies up
    observed = _observe(monkeypatch, project, site_digest(tmp_path), _listed(project))
    without_image = replace(observed, image_ids={**observed.image_ids, "kitctl/web:1": None})
    assert noop.decide(tmp_path, project, without_image) is None


@pytest.mark.parametrize("edit", ["file", "mode", "new file", "copy gone"])
def test_a_site_copy_behind_the_local_site_is_not_a_no_op(tmp_path: Path, monkeypatch, edit: str) -> None:
    """Anything `sync_site` would send again (content, a mode, a new file, no copy at all) sends `up` the full way."""
    project = _site(tmp_path)
    copied = site_digest(tmp_path)
    listed = _listed(project)
    if edit == "file":
        (tmp_path / "site.json").write_text("{}")  # not mounted: the containers are unchanged, the copy is not
    elif edit == "mode":
        (tmp_path / "branding").chmod(0o700)
    elif edit == "new file":
        (tmp_path / "secrets").mkdir()
        (tmp_path / "secrets" / "key").write_text("s")
    else:
        copied = ""
    observed = _observe(monkeypatch, project, copied, listed)
    assert not observed.site_copy_current
    assert noop.decide(tmp_path, project, observed) is None
    assert noop.decide(tmp_path, project, replace(observed, site_copy_current=True)) is not None  # the copy alone


def test_the_site_digest_is_the_one_sync_site_stores(tmp_path: Path) -> None:
    from kitctl.deploy.remote import _tar_site

    _site(tmp_path)
    archive, digest = _tar_site(tmp_path)
    assert site_digest(tmp_path) == digest and archive


def test_remote_dir_reaches_the_fast_up() -> None:
    from kitctl.entry import parse_fast_up_options

    assert parse_fast_up_options(["--docker-host", TARGET, "--remote-dir", "/srv/x"]) == {
        "docker_host": TARGET, "remote_dir": "/srv/x"}


def _answer(stream, body: bytes, close: bool = False) -> None:
    stream.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode()
                   + (b"\r\nConnection: close" if close else b"") + b"\r\n\r\n" + body)


def test_one_session_carries_the_command_output_then_the_engine_api_and_a_closed_one_is_replaced() -> None:
    """What `SSHHost` reads from its session: the command's output up to the separator, then HTTP; once the
    engine closes that connection (as after an exec) the next request goes over the next dial-stdio session."""
    import socket
    import threading

    from kitctl.deploy.engine_socket import EngineSocket
    from kitctl.deploy.ssh_engine import SEP, ChannelHTTPClient, _read_through

    first, first_remote = socket.socketpair()
    spare, spare_remote = socket.socketpair()
    channels = [first, spare]

    def engine_host() -> None:
        first_remote.sendall(f"abc123\n{SEP}\n".encode())
        assert first_remote.recv(65536).startswith(b"GET /v1.41/containers/json?")
        _answer(first_remote, json.dumps([{"Id": "x"}]).encode(), close=True)
        first_remote.close()
        assert spare_remote.recv(65536).startswith(b"GET /v1.41/images/kitctl/web:1/json")
        _answer(spare_remote, b'{"Id": "sha256:web"}')

    thread = threading.Thread(target=engine_host)
    thread.start()
    assert _read_through(first, f"{SEP}\n".encode()) == "abc123\n"
    with EngineSocket(TARGET, client=ChannelHTTPClient(lambda: channels.pop(0), 5)) as engine:
        assert engine.containers({}) == [{"Id": "x"}]
        assert engine.image_id("kitctl/web:1") == "sha256:web"
    thread.join()
    assert channels == []
    spare_remote.close()


def test_a_session_closed_before_the_separator_is_an_error() -> None:
    import socket

    from kitctl.deploy.ssh_engine import SEP, _read_through

    ours, remote = socket.socketpair()
    remote.sendall(b"docker: command not found\n")
    remote.close()
    with pytest.raises(EOFError):
        _read_through(ours, f"{SEP}\n".encode())


class ChannelLike:
    """A socket that, like a paramiko channel, reads nothing more once closed (its files do not keep it open)."""

    def __init__(self, sock) -> None:
        self.sock, self.closed = sock, False

    def settimeout(self, timeout: float) -> None:
        self.sock.settimeout(timeout)

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def makefile(self, mode: str):
        import io

        channel = self

        class Reader(io.RawIOBase):
            def readable(self) -> bool:
                return True

            def readinto(self, buffer) -> int:
                if channel.closed:
                    return 0
                data = channel.sock.recv(len(buffer))
                buffer[:len(data)] = data
                return len(data)

        return io.BufferedReader(Reader())

    def close(self) -> None:
        self.closed = True


def test_an_answer_that_ends_the_connection_is_read_whole_over_a_channel() -> None:
    """`exec start` answers a raw stream that ends with the connection: http.client closes the connection
    after the headers, which for an SSH channel (unlike a socket) would lose the command's output."""
    import socket
    import threading
    import time

    from kitctl.deploy.ssh_engine import ChannelHTTPClient

    ours, remote = socket.socketpair()

    def engine_host() -> None:
        request = b""
        while not request.endswith(b"\r\n\r\n{}"):  # the whole request: closing on unread bytes would reset
            request += remote.recv(65536)
        assert request.startswith(b"POST /v1.41/exec/e1/start")
        remote.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n")
        time.sleep(0.3)  # the command's output comes later than the headers
        remote.sendall(b"\x01\x00\x00\x00\x00\x00\x00\x03hi\n")
        remote.close()

    thread = threading.Thread(target=engine_host)
    thread.start()
    client = ChannelHTTPClient(lambda: ChannelLike(ours), 5)
    status, body = client.request("POST", "/v1.41/exec/e1/start", b"{}", {"Content-Type": "application/json"})
    thread.join()
    assert (status, body) == (200, b"\x01\x00\x00\x00\x00\x00\x00\x03hi\n")

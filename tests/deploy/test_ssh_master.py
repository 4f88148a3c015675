"""The persistent SSH master kept between commands: a private socket directory, strict host keys, a bounded life,
and the no-op check through it (issue 23: a no-op `up` over ssh:// within 1.5x the local one).

The ssh binary and the engine's host are the boundary here; on the real sshd: tests/e2e/test_ssh_host.py.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from kitctl.deploy import noop, ssh_master
from kitcore.errors import InvalidInput

TARGET = "ssh://deploy@shop.example:2201"


@pytest.fixture(autouse=True)
def private_runtime(tmp_path: Path, monkeypatch) -> Iterator[Path]:
    runtime = Path(tempfile.mkdtemp(prefix="kt", dir="/tmp"))  # a unix socket's path has 107 bytes at most
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(ssh_master.PERSIST_ENV, raising=False)
    yield runtime
    shutil.rmtree(runtime)


def test_the_socket_directory_is_made_0700_and_refused_when_others_can_enter(private_runtime: Path) -> None:
    made = ssh_master.control_dir()
    assert made == private_runtime / f"kitctl-ssh-{os.getuid()}"
    assert made.stat().st_mode & 0o777 == 0o700 and made.stat().st_uid == os.getuid()
    made.chmod(0o755)  # someone loosened it: a socket in it could be anyone's
    assert ssh_master.control_dir() is None and ssh_master.forwarded_engine(TARGET) is None
    assert ssh_master.start(TARGET) is None


def test_the_master_checks_host_keys_strictly_against_the_paramiko_known_hosts(tmp_path: Path) -> None:
    control, engine = ssh_master.socket_paths(ssh_master.control_dir(), TARGET)
    command = ssh_master.master_command(TARGET, control, engine, 60)
    options = {command[i + 1] for i, word in enumerate(command) if word == "-o"}
    assert {"StrictHostKeyChecking=yes", f"UserKnownHostsFile={tmp_path / 'home' / '.ssh' / 'known_hosts'}",
            "GlobalKnownHostsFile=none", "UpdateHostKeys=no", "BatchMode=yes", "ControlMaster=yes",
            f"ControlPath={control}", "ControlPersist=60"} <= options
    assert command[command.index("-L") + 1] == f"{engine}:/var/run/docker.sock"
    assert command[-6:] == ["-l", "deploy", "-p", "2201", "--", "shop.example"]
    assert command[command.index("-F") + 1] == "none"  # no ~/.ssh/config: paramiko reads none either
    assert len(str(engine)) < 100  # sun_path


def test_persist_is_read_from_the_environment_and_a_bad_value_is_one_line(monkeypatch) -> None:
    assert ssh_master.persist_seconds() == 60
    monkeypatch.setenv(ssh_master.PERSIST_ENV, "300")
    assert ssh_master.persist_seconds() == 300
    for bad in ("-1", "soon", "999999"):
        monkeypatch.setenv(ssh_master.PERSIST_ENV, bad)
        with pytest.raises(InvalidInput, match="KITCTL_SSH_PERSIST"):
            ssh_master.persist_seconds()


def _listening(path: Path) -> socket.socket:
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    return server


def test_only_a_live_masters_own_sockets_are_used_and_persist_0_uses_none(monkeypatch) -> None:
    control, engine = ssh_master.socket_paths(ssh_master.control_dir(), TARGET)
    assert ssh_master.forwarded_engine(TARGET) is None
    engine.write_text("")  # a file, not a socket
    with _listening(control):
        assert ssh_master.forwarded_engine(TARGET) is None
        engine.unlink()
        with _listening(engine):
            assert ssh_master.forwarded_engine(TARGET) == f"unix://{engine}"
            monkeypatch.setenv(ssh_master.PERSIST_ENV, "0")
            assert ssh_master.forwarded_engine(TARGET) is None and ssh_master.start(TARGET) is None


class Started(Exception):
    pass


def test_the_no_op_check_goes_through_a_live_master_without_a_new_connection(tmp_path: Path, monkeypatch) -> None:
    from kitctl.deploy import ssh_engine

    project = object()
    monkeypatch.setattr(ssh_master, "forwarded_engine", lambda target: "unix:///run/forwarded.sock")
    monkeypatch.setattr(noop, "observe_forwarded", lambda engine, p, d: ("forwarded", engine, p, d))
    monkeypatch.setattr(ssh_engine, "SSHHost", lambda target: pytest.fail("a new SSH connection was opened"))
    monkeypatch.setattr(ssh_master, "start", lambda target: pytest.fail("a second master was started"))
    assert noop.observe_remote(TARGET, project, "/srv/shop") == ("forwarded", "unix:///run/forwarded.sock",
                                                                project, "/srv/shop")


def test_without_a_master_the_check_starts_one_for_the_next_command_and_decides_over_a_session(monkeypatch) -> None:
    started: list[str] = []
    monkeypatch.setattr(ssh_master, "forwarded_engine", lambda target: None)
    monkeypatch.setattr(ssh_master, "start", started.append)
    monkeypatch.setattr(noop, "observe_over_session", lambda target, p, d: "over a session")
    assert noop.observe_remote(TARGET, object(), None) == "over a session"
    assert started == [TARGET]


def test_a_master_gone_meanwhile_falls_back_to_a_new_connection(monkeypatch) -> None:
    from kitctl.deploy.engine_socket import EngineSocket

    started: list[str] = []
    monkeypatch.setattr(ssh_master, "forwarded_engine", lambda target: "unix:///nonexistent/kitctl-engine.sock")
    monkeypatch.setattr(ssh_master, "start", started.append)
    monkeypatch.setattr(noop, "observe_over_session", lambda target, p, d: "over a session")
    monkeypatch.setattr(EngineSocket, "containers", lambda self, f: EngineSocket.get(self, "/containers/json"))
    project = type("P", (), {"name": "shop", "services": {}})()
    assert noop.observe_remote(TARGET, project, None) == "over a session"
    assert started == [TARGET]


def test_one_master_starts_at_a_time_and_a_live_one_is_left_alone(monkeypatch) -> None:
    """Two masters starting together leave the loser as a plain connection that never ends: starting holds a
    lock (released when `ssh -f` returns), and a master whose control socket answers is not started again."""
    import fcntl
    import subprocess

    ran: list[list[str]] = []
    monkeypatch.setattr(subprocess, "run", lambda command, **kw: ran.append(command))
    control, engine = ssh_master.socket_paths(ssh_master.control_dir(), TARGET)
    lock = os.open(control.with_suffix(".lock"), os.O_CREAT | os.O_RDWR)
    fcntl.flock(lock, fcntl.LOCK_EX)  # another command is starting it
    assert ssh_master.start(TARGET) is None
    os.close(lock)
    with _listening(control) as live:
        live.listen()
        assert ssh_master.start(TARGET) is None and ran == []
    assert control.is_socket()  # left by a master that died: ssh would refuse to bind it and never multiplex
    worker = ssh_master.start(TARGET)
    worker.join(5)
    assert ran == [ssh_master.master_command(TARGET, control, engine, 60)] and not control.exists()
    again = ssh_master.start(TARGET)  # the lock was given back once `ssh -f` returned
    again.join(5)
    assert len(ran) == 2

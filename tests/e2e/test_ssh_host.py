"""Over ssh:// `doctor` measures the engine's host and `down --volumes` removes the site's copy there
(issue 23, item 4), through the shared sshd (its host is this machine's, with the engine on it)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.conftest import require
from tests.deploy.stack import SiteSpec, issue_test_licence, write_site
from tests.support.cli import kitctl

pytestmark = [pytest.mark.e2e]

SSH_TARGET = f"ssh://root@127.0.0.1:{os.environ.get('KITCTL_SSHD_PORT', '2222')}"


def _sshd_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", int(SSH_TARGET.rsplit(":", 1)[1])), timeout=3):
            return True
    except OSError:
        return False


def _site(tmp_path: Path, http_port: int) -> tuple[Path, str]:
    require(_sshd_up(), f"sshd for {SSH_TARGET} is not running")
    project = f"e2essh{uuid.uuid4().hex[:8]}"
    token, jwks = issue_test_licence(tmp_path / "hq", project, None)
    site = write_site(tmp_path / project, SiteSpec(project, "SSH host", http_port, "kitctl/web:none"), token, jwks)
    return site, project


def test_doctor_over_ssh_measures_ports_and_disk_on_the_engines_host(tmp_path: Path) -> None:
    with socket.socket() as held:  # this machine is the engine's host behind the sshd
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        site, _ = _site(tmp_path, port)
        done = kitctl("doctor", "--json", "--site-dir", str(site), "--docker-host", SSH_TARGET, check=False,
                      timeout=120)
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    assert done.returncode == 1, done.stderr
    assert checks["ports"]["status"] == "fail"
    assert f"127.0.0.1:{port}/tcp (--http-port) is already in use" in checks["ports"]["detail"]
    assert f"(pid {os.getpid()}) on the engine's host" in checks["ports"]["detail"]
    assert "GiB free under" in checks["disk"]["detail"] and "on the engine's host" in checks["disk"]["detail"]


def test_up_over_ssh_refuses_a_port_taken_on_the_engines_host_and_changes_nothing(tmp_path: Path) -> None:
    """`up`'s preflight measures the engine's host as `doctor` does: one line naming the flag and the holder,
    exit 2, and no container, network, volume or site copy made (the old `up` went on and failed later)."""
    import docker

    from kitctl.deploy.remote import REMOTE_ROOT

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        site, project = _site(tmp_path, port)
        done = kitctl("up", "--site-dir", str(site), "--docker-host", SSH_TARGET, check=False, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    [line] = done.stderr.strip().splitlines()
    assert f"127.0.0.1:{port}/tcp (--http-port) is already in use" in line
    assert f"(pid {os.getpid()}) on the engine's host; choose another with --http-port" in line
    engine = docker.from_env(timeout=60).api
    labelled = {"label": [f"com.docker.compose.project={project}"]}
    assert engine.containers(all=True, filters=labelled) == [] and engine.networks(filters=labelled) == []
    assert engine.volumes(filters=labelled).get("Volumes") in (None, [])
    assert _on_host(f"test -e {REMOTE_ROOT}/{project} && echo present || echo absent") == "absent"


def _on_host(command: str) -> str:
    from kitctl.deploy.remote import _run, _ssh

    with _ssh(SSH_TARGET) as ssh:
        return _run(ssh, command)[1].strip()


def test_down_volumes_over_ssh_removes_the_sites_copy_and_keeps_what_kitctl_did_not_copy(tmp_path: Path) -> None:
    from kitctl.deploy.compose import load_project
    from kitctl.deploy.remote import REMOTE_ROOT, sync_site

    site, project = _site(tmp_path, 18080)
    copy = f"{REMOTE_ROOT}/{project}"
    foreign = f"/tmp/kitctl-e2e-foreign-{project}"
    try:
        sync_site(SSH_TARGET, load_project(site), None)  # what `up` copies there, secrets included
        assert _on_host(f"cat {copy}/secrets/db_password") == (site / "secrets" / "db_password").read_text()
        kept = kitctl("down", "--volumes", "--yes", "--site-dir", str(site), "--docker-host", SSH_TARGET, timeout=120)
        assert f"removed the site's copy {copy} on the engine's host" in kept.stdout
        assert _on_host(f"test -e {copy} && echo present || echo gone") == "gone"

        _on_host(f"mkdir -p {foreign} && echo mine > {foreign}/note")
        other = kitctl("down", "--volumes", "--yes", "--site-dir", str(site), "--docker-host", SSH_TARGET,
                       "--remote-dir", foreign, timeout=120)
        assert f"kept {foreign} on the engine's host: kitctl did not copy it there" in other.stdout
        assert _on_host(f"cat {foreign}/note") == "mine"
    finally:
        _on_host(f"rm -rf {copy} {foreign}")


def test_the_no_op_checks_session_reads_the_copy_then_the_engine_and_execs_over_ssh(tmp_path: Path) -> None:
    """What the no-op check of `up` does over one SSH connection, on the real sshd and engine: a shell
    command's output, then API reads, an exec in a container (its output whole) and reads after it."""
    import docker

    from kitctl.deploy.engine_socket import EngineSocket
    from kitctl.deploy.ssh_engine import SSHHost
    from tests.deploy.stack import BASE_IMAGE

    require(_sshd_up(), f"sshd for {SSH_TARGET} is not running")
    client = docker.from_env(timeout=60)
    name = f"e2essh-exec-{uuid.uuid4().hex[:8]}"
    container = client.containers.run(BASE_IMAGE, ["sleep", "120"], name=name, detach=True)
    try:
        with SSHHost(SSH_TARGET) as host:
            host.open(f"echo {name}", spare=True)
            printed, engine_client = host.result()
            with EngineSocket(SSH_TARGET, client=engine_client) as engine:
                assert [c["Id"] for c in engine.containers({"name": [name]})] == [container.id]
                assert engine.exec_output(container.id, ["sh", "-c", "echo from-$((6*7)); exit 3"]) == (3, "from-42\n")
                assert engine.exec_output(container.id, ["echo", "again"]) == (0, "again\n")  # a session opened now
                assert engine.image_id(BASE_IMAGE) == client.images.get(BASE_IMAGE).id
        assert printed == f"{name}\n"
    finally:
        container.remove(force=True, v=True)  # with its anonymous volumes (images that declare VOLUME)


def _wait(worker) -> None:
    assert worker is not None, "no master was started"
    worker.join(60)  # `ssh -f` returns once authenticated and forwarding, or refused
    assert not worker.is_alive()


def test_the_ssh_master_forwards_the_engine_from_a_private_directory_until_closed(tmp_path: Path,
                                                                                  monkeypatch) -> None:
    from kitctl.deploy import ssh_master
    from kitctl.deploy.engine_socket import EngineSocket

    require(_sshd_up(), f"sshd for {SSH_TARGET} is not running")
    runtime = Path(tempfile.mkdtemp(prefix="kt", dir="/tmp"))  # a unix socket's path has 107 bytes at most
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    try:
        _wait(ssh_master.start(SSH_TARGET))
        directory = ssh_master.control_dir(create=False)
        assert directory is not None and directory.stat().st_mode & 0o777 == 0o700
        forwarded = ssh_master.forwarded_engine(SSH_TARGET)
        assert forwarded is not None
        for path in ssh_master.socket_paths(directory, SSH_TARGET):
            assert path.stat().st_uid == os.getuid() and path.stat().st_mode & 0o077 == 0
        with EngineSocket(forwarded) as engine:
            assert engine.get("/version")["ApiVersion"]
        assert ssh_master.close(SSH_TARGET)
        assert ssh_master.forwarded_engine(SSH_TARGET) is None
    finally:
        ssh_master.close(SSH_TARGET)
        shutil.rmtree(runtime)


def test_a_changed_host_key_is_refused_by_the_master_and_by_paramiko(tmp_path: Path, monkeypatch) -> None:
    """known_hosts says the host has another key (a changed key, or a man in the middle): no master, no
    forwarded engine, and the paramiko connection refuses too."""
    from kitcore.errors import KitError
    from kitctl.deploy import ssh_master
    from kitctl.deploy.remote import _ssh

    require(_sshd_up(), f"sshd for {SSH_TARGET} is not running")
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    config = Path.home() / ".ssh" / "config"
    if config.exists():  # the identity the sshd accepts
        shutil.copy(config, home / ".ssh" / "config")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    other = (tmp_path / "other.pub").read_text().split()[:2]
    port = SSH_TARGET.rsplit(":", 1)[1]
    (home / ".ssh" / "known_hosts").write_text(f"[127.0.0.1]:{port} {' '.join(other)}\n")
    runtime = Path(tempfile.mkdtemp(prefix="kt", dir="/tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("HOME", str(home))
    try:
        _wait(ssh_master.start(SSH_TARGET))
        assert ssh_master.forwarded_engine(SSH_TARGET) is None
        assert not [p for p in ssh_master.control_dir(create=False).iterdir() if p.is_socket()]
        with pytest.raises(KitError, match="cannot reach 127.0.0.1 over ssh"):
            with _ssh(SSH_TARGET):
                pass
    finally:
        shutil.rmtree(runtime)

"""The real services scripts/services.sh starts: each answers, and only as intended."""

from __future__ import annotations

import stat

import pytest
import requests

from tests.infra import fixtures

pytestmark = pytest.mark.e2e


def test_docker_engine_answers(docker_engine) -> None:
    info = docker_engine.info()
    assert info["ServerVersion"]
    assert docker_engine.ping() is True


def test_registry_rejects_anonymous_and_wrong_password(registry) -> None:
    url = f"http://{registry.address}/v2/"
    anonymous = requests.get(url, timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic")
    assert requests.get(url, auth=(registry.username, registry.password + "x"), timeout=10).status_code == 401
    assert requests.get(url, auth=("nobody", registry.password), timeout=10).status_code == 401


def test_registry_accepts_admin(registry) -> None:
    response = requests.get(f"http://{registry.address}/v2/_catalog", auth=(registry.username, registry.password), timeout=10)
    assert response.status_code == 200
    assert "repositories" in response.json()


def test_secrets_are_private(registry, ssh_url) -> None:
    for path in (fixtures.state_dir() / "registry" / "admin.password", fixtures.ssh_client_key()):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_docker_py_reaches_the_engine_over_ssh(docker_engine, ssh_url) -> None:
    import docker

    remote = docker.DockerClient(base_url=ssh_url, use_ssh_client=False, timeout=60)
    try:
        assert remote.info()["ID"] == docker_engine.info()["ID"]
        assert remote.version()["ApiVersion"]
    finally:
        remote.close()


def test_ssh_refuses_an_unknown_key(ssh_url, tmp_path) -> None:
    import subprocess

    import paramiko

    key_path = tmp_path / "stranger"

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key_path)], check=True)
    client = paramiko.SSHClient()
    client.load_system_host_keys()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    with pytest.raises(paramiko.AuthenticationException):
        client.connect("127.0.0.1", port=fixtures.sshd_port(), username="root", key_filename=str(key_path),
                       look_for_keys=False, allow_agent=False, timeout=10)
    client.close()


def test_postgres_answers() -> None:
    import psycopg

    with psycopg.connect(fixtures.postgres_admin_url(), connect_timeout=10) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_start_is_idempotent(docker_engine, registry, ssh_url) -> None:
    fixtures.ensure_service("postgres")
    proc = fixtures.services_cmd("start", "all")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("already running") == 4, proc.stdout
    assert registry.password not in proc.stdout + proc.stderr


def test_status_reports_every_service(docker_engine, registry, ssh_url) -> None:
    fixtures.ensure_service("postgres")
    proc = fixtures.services_cmd("status", "all")
    assert proc.returncode == 0
    for name in ("docker", "registry", "sshd", "postgres"):
        assert f"{name}: running" in proc.stdout


@pytest.mark.parametrize("args", [["frobnicate"], ["start", "mysql"], []])
def test_bad_usage_exits_2(args: list[str]) -> None:
    import subprocess

    proc = subprocess.run([str(fixtures.SERVICES_SCRIPT), *args], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "usage:" in proc.stderr

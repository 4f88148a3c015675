"""The stack's images, built once per session on the real engine, do their jobs."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from kitcore import __version__
from kitctl.deploy.engine_exec import run_in

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(client, image: str, command: list[str], **kwargs) -> tuple[int, str]:
    container = client.containers.run(image, command, detach=True, network_mode="none", **kwargs)
    try:
        code = container.wait(timeout=120)["StatusCode"]
        return code, container.logs().decode()
    finally:
        container.remove(force=True, v=True)  # with its anonymous volumes (images that declare VOLUME)


def test_every_service_image_is_tagged_with_the_kit_version(built_images, docker_engine) -> None:
    assert sorted(built_images) == sorted(["storefront", "agent", "hq", "db", "proxy", "prometheus", "alertmanager"])
    for service, built in built_images.items():
        image = docker_engine.images.get(f"kitctl/{service}:{__version__}")
        assert image.id == built.image_id
        assert image.labels["org.opencontainers.image.version"] == __version__
        assert image.attrs["Config"]["Entrypoint"][0] == "/usr/local/bin/kit-tini"


def test_agent_image_imports_kitctl_as_non_root(built_images, docker_engine) -> None:
    code, output = _run(docker_engine, built_images["agent"].tag,
                        ["python", "-c", "import os, kitctl; print(kitctl.__version__, os.getuid(), os.environ['PATH'].split(':')[0])"])
    assert code == 0, output
    assert output.split() == [__version__, "10001", "/opt/kit/bin"]


@pytest.mark.parametrize("service", ["storefront", "agent", "hq"])
def test_python_service_images_run_their_module(built_images, docker_engine, service: str) -> None:
    config = docker_engine.images.get(built_images[service].tag).attrs["Config"]
    assert config["Cmd"] == ["python", "-m", service]
    assert config["User"] == "10001:10001"
    # one Dockerfile, one stage per service: each image carries its own stage's metadata only
    assert config["Labels"]["com.kitctl.service"] == service
    assert list(config["ExposedPorts"]) == [{"storefront": "8000/tcp", "agent": "9464/tcp", "hq": "8600/tcp"}[service]]
    assert (config.get("Volumes") or {}) == ({"/var/lib/kit/hq": {}} if service == "hq" else {})


@pytest.mark.parametrize("service", ["prometheus", "alertmanager"])
def test_monitoring_images_are_stages_of_one_file_running_debians_binaries(built_images, docker_engine,
                                                                           service: str) -> None:
    config = docker_engine.images.get(built_images[service].tag).attrs["Config"]
    assert config["User"] == "prometheus" and config["Labels"]["com.kitctl.service"] == service
    assert list(config["ExposedPorts"]) == [{"prometheus": "9090/tcp", "alertmanager": "9093/tcp"}[service]]
    binary = {"prometheus": "prometheus", "alertmanager": "prometheus-alertmanager"}[service]
    assert config["Cmd"][0] == binary
    code, output = _run(docker_engine, built_images[service].tag, [binary, "--version"])
    assert code == 0 and "branch: debian/" in output, output  # Debian's build


def test_the_prometheus_image_checks_the_shipped_rules(built_images, docker_engine) -> None:
    rules = Path(__file__).resolve().parents[2] / "monitoring" / "prometheus" / "kitctl-rules.yml"
    code, output = _run(docker_engine, built_images["prometheus"].tag, ["promtool", "check", "rules", "/r/rules.yml"],
                        volumes={str(rules): {"bind": "/r/rules.yml", "mode": "ro"}})
    assert code == 0 and "17 rules found" in output, output


def test_probe_reports_health(built_images, docker_engine) -> None:
    code, _ = _run(docker_engine, built_images["storefront"].tag, ["kit-probe", "http://127.0.0.1:9/healthz", "1"])
    assert code == 1
    server = "import http.server as h; h.HTTPServer(('127.0.0.1', 8000), h.SimpleHTTPRequestHandler).serve_forever()"
    container = docker_engine.containers.run(built_images["storefront"].tag, ["python", "-c", server], detach=True, network_mode="none")
    try:
        deadline = time.monotonic() + 30
        while True:
            result = run_in(container, ["kit-probe", "http://127.0.0.1:8000/"])
            if result.exit_code == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert result.exit_code == 0, result.output
    finally:
        container.remove(force=True, v=True)  # with its anonymous volumes (images that declare VOLUME)


def _secret(tmp_path: Path, password: str) -> Path:
    path = tmp_path / "db_password"
    path.write_text(password + "\n")
    path.chmod(0o600)
    return path


def test_db_image_initialises_with_the_secret_password(built_images, docker_engine, tmp_path) -> None:
    import psycopg

    password = "pw-" + tmp_path.name
    port = _free_port()
    volume = docker_engine.volumes.create()
    run = dict(detach=True, ports={"5432/tcp": ("127.0.0.1", port)},
               volumes={str(_secret(tmp_path, password)): {"bind": "/run/secrets/db_password", "mode": "ro"},
                        volume.name: {"bind": "/var/lib/postgresql/data", "mode": "rw"}})
    container = docker_engine.containers.run(built_images["db"].tag, **run)
    try:
        _wait_ready(container)
        with psycopg.connect(f"postgresql://kit:{password}@127.0.0.1:{port}/kit", connect_timeout=10) as conn:
            conn.execute("create table kept (n int)")
            conn.execute("insert into kept values (42)")
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(f"postgresql://kit:wrong@127.0.0.1:{port}/kit", connect_timeout=10)
        assert password not in container.logs().decode()
        # a new container on the same volume keeps the data and does not re-initialise
        container.remove(force=True, v=True)  # with its anonymous volumes (images that declare VOLUME)
        container = docker_engine.containers.run(built_images["db"].tag, **run)
        _wait_ready(container)
        assert "initialising" not in container.logs().decode()
        with psycopg.connect(f"postgresql://kit:{password}@127.0.0.1:{port}/kit", connect_timeout=10) as conn:
            assert conn.execute("select n from kept").fetchone() == (42,)
    finally:
        container.remove(force=True, v=True)  # with its anonymous volumes (images that declare VOLUME)
        volume.remove(force=True)


def _wait_ready(container, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run_in(container, ["pg_isready", "-h", "127.0.0.1", "-U", "kit", "-d", "kit"]).exit_code == 0:
            return
        container.reload()
        assert container.status in ("created", "running"), container.logs().decode()
        time.sleep(0.5)
    raise AssertionError(f"db not ready in {timeout} s: {container.logs().decode()[-500:]}")


def test_db_image_refuses_to_start_without_a_password(built_images, docker_engine) -> None:
    code, output = _run(docker_engine, built_images["db"].tag, ["postgres"])
    assert code == 1
    assert output.strip().splitlines()[-1] == "kit-db: password file /run/secrets/db_password is missing or unreadable"


def test_proxy_serves_the_mounted_caddyfile(built_images, docker_engine, tmp_path) -> None:
    import requests

    caddyfile = tmp_path / "Caddyfile"
    caddyfile.write_text(':80 {\n  respond "proxied {http.request.uri.path}" 200\n}\n')
    caddyfile.chmod(0o644)
    port = _free_port()
    container = docker_engine.containers.run(
        built_images["proxy"].tag, detach=True, ports={"80/tcp": ("127.0.0.1", port)},
        volumes={str(caddyfile): {"bind": "/etc/caddy/Caddyfile", "mode": "ro"}})
    try:
        deadline = time.monotonic() + 30
        body = ""
        while time.monotonic() < deadline:
            try:
                body = requests.get(f"http://127.0.0.1:{port}/hello", timeout=2).text
                break
            except requests.ConnectionError:
                time.sleep(0.3)
        assert body == "proxied /hello"
        assert run_in(container, ["id", "-un"]).output.decode().strip() == "caddy"
    finally:
        container.remove(force=True, v=True)  # with its anonymous volumes (images that declare VOLUME)

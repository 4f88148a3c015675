"""Pushing to the real authenticated registry: works with the admin login, refused without."""

from __future__ import annotations

import pytest
import requests

from kitcore import __version__
from kitcore.errors import InvalidInput
from kitctl.images.registry import checked_credentials, push_images

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_push_with_the_admin_login(built_images, docker_engine, registry) -> None:
    creds = checked_credentials(registry.address, registry.username, registry.password)
    pushed = push_images(docker_engine, ["proxy"], __version__, creds)
    assert pushed == [f"{registry.address}/kitctl/proxy:{__version__}"]
    tags = requests.get(f"http://{registry.address}/v2/kitctl/proxy/tags/list",
                        auth=(registry.username, registry.password), timeout=10).json()
    assert __version__ in tags["tags"]


def test_push_with_a_wrong_password_is_refused_in_one_line(built_images, docker_engine, registry) -> None:
    creds = checked_credentials(registry.address, registry.username, "not-" + registry.password)
    with pytest.raises(InvalidInput, match=r"registry .* refused login for 'admin'") as refused:
        push_images(docker_engine, ["proxy"], __version__, creds)
    assert "\n" not in str(refused.value)
    assert registry.password not in str(refused.value)


def test_anonymous_push_is_refused(built_images, docker_engine, registry) -> None:
    import docker

    repository = f"{registry.address}/kitctl/anonymous"
    docker_engine.api.tag(built_images["proxy"].tag, repository, "x")
    fresh = docker.APIClient(base_url="unix:///var/run/docker.sock")  # no login cached in memory
    try:
        events = list(fresh.push(repository, tag="x", stream=True, decode=True))
        errors = [e for e in events if "error" in e]
        assert errors and "no basic auth credentials" in errors[-1]["error"]
    finally:
        fresh.close()
        docker_engine.api.remove_image(f"{repository}:x")


def test_cli_push_reads_the_password_from_stdin(built_images, registry, monkeypatch, capsys) -> None:
    import io

    from kitctl.cli import run

    monkeypatch.setattr("sys.stdin", io.StringIO(registry.password + "\n"))
    code = run(["images", "push", "--registry", registry.address, "--username", registry.username,
                "--password-stdin", "--service", "proxy", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"{registry.address}/kitctl/proxy:{__version__}" in captured.out
    assert registry.password not in captured.out + captured.err


def test_cli_push_without_a_password_exits_2(monkeypatch, capsys) -> None:
    from kitctl.cli import run

    monkeypatch.delenv("KITCTL_REGISTRY_PASSWORD", raising=False)
    code = run(["images", "push", "--registry", "127.0.0.1:5000", "--username", "admin"])
    assert code == 2
    assert "no registry password" in capsys.readouterr().err


@pytest.mark.parametrize("registry_arg", ["http://127.0.0.1:5000", "127.0.0.1:99999", "bad host", ""])
def test_malformed_registry_is_refused(registry_arg: str) -> None:
    with pytest.raises(InvalidInput):
        checked_credentials(registry_arg, "admin", "pw")

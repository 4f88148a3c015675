"""Real services for tests: Docker engine, registry, loopback sshd, PostgreSQL.

Plain functions (usable from any test, benchmark or conftest) plus thin
pytest fixtures over them. Everything is started by `scripts/services.sh`,
idempotently; nothing is assumed to be running before.

Outside CI a machine that cannot run the services skips these tests with the
reason; with CI=true it fails instead, so a broken setup is never green.
"""

from __future__ import annotations

import getpass
import os
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import pytest

from demo.services import state_dir

if TYPE_CHECKING:
    import docker

REPO = Path(__file__).resolve().parents[2]
SERVICES_SCRIPT = REPO / "scripts" / "services.sh"


def registry_address() -> str:
    return os.environ.get("KITCTL_REGISTRY_ADDR", "127.0.0.1:5000")


def sshd_port() -> int:
    return int(os.environ.get("KITCTL_SSHD_PORT", "2222"))


def pg_port() -> int:
    return int(os.environ.get("KITCTL_PG_PORT", "55432"))


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def services_cmd(action: str, service: str = "all") -> subprocess.CompletedProcess[str]:
    """Run `scripts/services.sh ACTION SERVICE`; the result, whatever the exit code."""
    return subprocess.run([str(SERVICES_SCRIPT), action, service], capture_output=True, text=True, timeout=300)


@lru_cache(maxsize=None)
def ensure_service(service: str) -> None:
    """Start one service (docker, registry, sshd, postgres) once per process."""
    proc = services_cmd("start", service)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines() or ["no output"]
        _unavailable(f"{service} could not start: {lines[-1]}")


def docker_client() -> docker.DockerClient:
    """A docker-py client for the local engine (started when needed)."""
    import docker

    ensure_service("docker")
    return docker.DockerClient(base_url="unix:///var/run/docker.sock", timeout=600)


@dataclass(frozen=True)
class RegistryLogin:
    address: str
    username: str
    password: str

    def __repr__(self) -> str:
        return f"RegistryLogin(address={self.address!r}, username={self.username!r}, password='***')"


def registry_login() -> RegistryLogin:
    """Address and admin credentials of the authenticated local registry."""
    ensure_service("registry")
    reg = state_dir() / "registry"
    return RegistryLogin(
        registry_address(),
        (reg / "admin.username").read_text().strip(),
        (reg / "admin.password").read_text().strip(),
    )


def ssh_docker_url() -> str:
    """`ssh://user@127.0.0.1:PORT` reaching this machine's engine through sshd.

    docker-py (paramiko) finds the client key through the `Host 127.0.0.1`
    entry services.sh writes to ~/.ssh/config, and the host key in
    ~/.ssh/known_hosts: `docker.DockerClient(base_url=url, use_ssh_client=False)`.
    """
    ensure_service("docker")
    ensure_service("sshd")
    return f"ssh://{getpass.getuser()}@127.0.0.1:{sshd_port()}"


def ssh_client_key() -> Path:
    """The private key sshd authorises (for tools other than docker-py)."""
    return state_dir() / "sshd" / "client_ed25519"


def postgres_admin_url() -> str:
    """Superuser URL of the throwaway cluster (trust on loopback only)."""
    ensure_service("postgres")
    return f"postgresql://postgres@127.0.0.1:{pg_port()}/postgres"


_BUILT: dict[str, list] = {}


def kit_images(version: str | None = None) -> list:
    """Build every kitctl/<service>:<version> image once per process (kitctl.images).

    Returns the `BuiltImage` records (service, tag, image_id, seconds, size_bytes).
    Docker's layer cache keeps repeated runs short.
    """
    from kitcore import __version__
    from kitctl.images import SERVICES
    from kitctl.images.build import build_images

    version = version or __version__
    if version not in _BUILT:
        client = docker_client()
        with _one_build_at_a_time():  # another xdist worker building too waits, then finds every layer cached
            _BUILT[version] = build_images(client, REPO, version, list(SERVICES))
    return _BUILT[version]


@contextmanager
def _one_build_at_a_time() -> Iterator[None]:
    """Two concurrent builds of one tree would each make their own layers and re-point the shared tags."""
    import fcntl

    lock = state_dir() / "image-build.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


# ------------------------------------------------------------ pytest fixtures
@pytest.fixture(scope="session")
def docker_engine():
    """docker-py client of the local engine."""
    client = docker_client()
    yield client
    client.close()


@pytest.fixture(scope="session")
def registry() -> RegistryLogin:
    return registry_login()


@pytest.fixture(scope="session")
def ssh_url() -> str:
    return ssh_docker_url()


@pytest.fixture(scope="session")
def built_images(docker_engine) -> dict:
    """{service: BuiltImage} for the current kit version, built once per session."""
    return {b.service: b for b in kit_images()}

"""The Docker engine kitctl works on: `unix://` (default) or `ssh://user@host[:port]`, for deploys and image builds alike."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from kitcore.errors import InvalidInput, KitError

if TYPE_CHECKING:
    import docker

DEFAULT_TARGET = "unix:///var/run/docker.sock"
API_VERSION = "1.41"
SSH_POOL_SIZE = 3
TARGET = re.compile(r"^(unix://.+|ssh://[A-Za-z0-9._-]+@[A-Za-z0-9.\-\[\]:]+?(:\d{1,5})?|tcp://127\.0\.0\.1:\d{1,5})\Z")


def check_target(target: str) -> str:
    """A target the engine client accepts, or a one-line error."""
    if not TARGET.match(target):
        raise InvalidInput(f"--docker-host {target!r} must be unix:///path or ssh://user@host[:port]")
    return target


def connect(target: str | None = None, timeout: int = 120) -> "docker.DockerClient":
    """A client for the target; ping once so an absent engine fails here with one line."""
    where = check_target(target or DEFAULT_TARGET)
    docker = import_docker(ssh=where.startswith("ssh://"))
    from docker.errors import DockerException

    try:
        # a fixed API version (Docker 20.10's) saves the negotiation round trip; newer engines accept it
        # over ssh:// every pooled connection is an SSH session; sshd allows 10 per connection
        # (MaxSessions), so keep few idle ones to leave room for the runner's parallel calls
        pool = SSH_POOL_SIZE if where.startswith("ssh://") else 10
        client = docker.DockerClient(base_url=where, timeout=timeout, use_ssh_client=False, version=API_VERSION,
                                     max_pool_size=pool)
        if where.startswith("ssh://"):
            _limit_in_flight(client.api, SSH_POOL_SIZE)
        client.ping()
    except (DockerException, OSError, EOFError) as exc:
        raise KitError(f"Docker engine not reachable at {where}: {first_line(exc)}") from None
    except Exception as exc:  # paramiko's auth/host-key errors are not DockerException
        raise KitError(f"Docker engine not reachable at {where}: {type(exc).__name__}: {first_line(exc)}") from None
    return client


def _limit_in_flight(api, limit: int) -> None:
    """At most `limit` requests at once on this client (each one is an SSH session over ssh://)."""
    import threading

    gate = threading.BoundedSemaphore(limit)
    send = api.send

    def limited_send(request, **kwargs):
        with gate:
            return send(request, **kwargs)

    api.send = limited_send


def import_docker(ssh: bool):
    """docker-py, without paramiko unless the target is ssh://.

    docker-py imports paramiko eagerly (half its import time) but degrades
    gracefully without it; a no-op `kitctl up` on the local socket must stay
    well under two seconds, so paramiko is loaded only when needed and the
    SSH adapter attached then.
    """
    import sys

    if "docker" not in sys.modules and not ssh and "paramiko" not in sys.modules:
        sys.modules["paramiko"] = None  # type: ignore[assignment]  # makes docker-py skip its SSH adapter
        try:
            import docker
        finally:
            del sys.modules["paramiko"]
    import docker
    import docker.api.client as api_client

    if ssh and not hasattr(api_client, "SSHHTTPAdapter"):
        from docker.transport.sshconn import SSHHTTPAdapter

        api_client.SSHHTTPAdapter = SSHHTTPAdapter  # type: ignore[attr-defined]
    return docker


def is_remote(target: str | None) -> bool:
    return bool(target) and target.startswith("ssh://")


def first_line(exc: BaseException) -> str:
    """The first line of an engine error, for one-line messages."""
    explanation = getattr(exc, "explanation", None)
    text = str(explanation or exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0][:300]

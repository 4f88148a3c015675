"""Connecting to a Docker engine with a one-line error when it is not there."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import docker


def connect(base_url: str | None = None, timeout: int = 300) -> "docker.DockerClient":
    """A client for `base_url` (unix://, tcp://, ssh:// via paramiko) or DOCKER_HOST.

    Pings once so that an absent engine fails here, with one line, rather than
    in the middle of a build.
    """
    import docker
    from docker.errors import DockerException

    from kitcore.errors import KitError

    try:
        if base_url:
            client = docker.DockerClient(base_url=base_url, timeout=timeout, use_ssh_client=False)
        else:
            client = docker.from_env(timeout=timeout)
        client.ping()
    except (DockerException, OSError) as exc:
        where = base_url or "DOCKER_HOST / unix:///var/run/docker.sock"
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise KitError(f"Docker engine not reachable at {where}: {first}") from None
    return client


def first_line(exc: BaseException) -> str:
    """The first line of an engine error, for one-line messages."""
    explanation = getattr(exc, "explanation", None)
    text = str(explanation or exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0]

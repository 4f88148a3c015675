"""Pushing a kit version's images to a registry (HQ's), with credentials.

Credentials are checked with one login before any layer moves, so a wrong
password fails with one line and pushes nothing. The password is passed to
the engine only (never written to disk, never printed).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kitctl.images import image_tag

if TYPE_CHECKING:
    import docker

_REGISTRY = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9-]+)*(?::[0-9]{1,5})?\Z")


@dataclass(frozen=True)
class RegistryCredentials:
    registry: str
    username: str
    password: str

    def __repr__(self) -> str:  # never show the password in tracebacks or logs
        return f"RegistryCredentials(registry={self.registry!r}, username={self.username!r}, password='***')"

    def auth_config(self) -> dict[str, str]:
        return {"username": self.username, "password": self.password, "serveraddress": self.registry}


def checked_credentials(registry: str, username: str, password: str) -> RegistryCredentials:
    """Credentials after checking their shape; one-line refusal otherwise."""
    from kitcore.errors import InvalidInput

    registry = registry.strip()
    if registry.startswith(("http://", "https://")) or not _REGISTRY.match(registry):
        raise InvalidInput(f"registry must be HOST[:PORT] (e.g. 127.0.0.1:5000), got {registry!r}")
    if ":" in registry and not 0 < int(registry.rsplit(":", 1)[1]) < 65536:
        raise InvalidInput(f"registry port out of range in {registry!r}")
    if not username or any(c.isspace() or c == ":" for c in username):
        raise InvalidInput("registry username must be non-empty, without spaces or ':'")
    password = password.rstrip("\r\n")
    if not password:
        raise InvalidInput("registry password is empty")
    return RegistryCredentials(registry, username, password)


def login(client: "docker.DockerClient", creds: RegistryCredentials) -> None:
    """Have the engine check the credentials against the registry."""
    from docker.errors import APIError

    from kitcore.errors import InvalidInput
    from kitctl.engine import first_line

    try:
        client.login(username=creds.username, password=creds.password, registry=creds.registry, reauth=True)
    except APIError as exc:
        raise InvalidInput(f"registry {creds.registry} refused login for {creds.username!r}: {first_line(exc)}") from None


def push_image(
    client: "docker.DockerClient",
    service: str,
    version: str,
    creds: RegistryCredentials,
    on_line: Callable[[str, str], None] | None = None,
) -> str:
    """Tag `kitctl/<service>:<version>` for the registry and push it; return the pushed ref."""
    from docker.errors import APIError, ImageNotFound

    from kitcore.errors import KitError
    from kitctl.engine import first_line

    local = image_tag(service, version)
    remote = image_tag(service, version, creds.registry)
    repository = remote.rsplit(":", 1)[0]
    try:
        client.api.tag(local, repository, version)
    except ImageNotFound:
        raise KitError(f"image {local} not found; run `kitctl images build` first") from None
    try:
        for event in client.api.push(repository, tag=version, stream=True, decode=True, auth_config=creds.auth_config()):
            if "error" in event or "errorDetail" in event:
                message = event.get("errorDetail", {}).get("message") or event.get("error")
                raise KitError(f"pushing {remote} failed: {message}")
            if on_line and event.get("status"):
                layer = event.get("id", "")
                on_line(service, f"{layer} {event['status']}".strip())
    except APIError as exc:
        raise KitError(f"pushing {remote} failed: {first_line(exc)}") from None
    return remote


def push_images(
    client: "docker.DockerClient",
    services: list[str],
    version: str,
    creds: RegistryCredentials,
    on_line: Callable[[str, str], None] | None = None,
) -> list[str]:
    """Log in once, then push every service image of `version`."""
    login(client, creds)
    return [push_image(client, s, version, creds, on_line) for s in services]

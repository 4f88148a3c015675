"""Secrets into containers: copied in before start, owned by the user the service runs as, mode 0400.

The site keeps its secrets as files of mode 0600 owned by whoever rendered it.
A read-only bind of such a file is unreadable for a service running as a
non-root user (the kit's images run as 10001), so instead of binding, kitctl
writes each secret into the created (not yet started) container at
/run/secrets/<name> through the Engine API, owned by the service's uid:gid.
Over ssh:// the secret travels inside the API connection; nothing else sees it.
A container with a read-only root filesystem cannot be written to: it keeps
the read-only bind (its user must then be able to read the host file).
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from kitctl.deploy.compose import Service
from kitcore.errors import KitError

if TYPE_CHECKING:
    from docker import APIClient


def service_owner(api: "APIClient", service: Service) -> tuple[int, int, int]:
    """(uid, gid, mode) for the service's secrets: its numeric user, or world-readable for a named one."""
    user = service.user
    if user is None:
        user = api.inspect_image(service.image).get("Config", {}).get("User") or ""
    if not user:
        return 0, 0, 0o400
    uid, _, gid = user.partition(":")
    if uid.isdigit() and (not gid or gid.isdigit()):
        return int(uid), int(gid or uid), 0o400
    return 0, 0, 0o444  # a named user cannot be resolved from outside the image: readable, not writable


def secrets_archive(service: Service, owner: tuple[int, int, int]) -> bytes:
    """A tar of the service's secrets at their targets, with the owner and mode applied."""
    uid, gid, mode = owner
    buffer = io.BytesIO()
    made: set[str] = set()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for mount in service.secrets():
            target = PurePosixPath(mount.target)
            for parent in reversed(target.parents[:-1]):
                if str(parent) not in made:
                    made.add(str(parent))
                    info = tarfile.TarInfo(str(parent).lstrip("/"))
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
            try:
                data = Path(mount.source).read_bytes()
            except OSError as exc:
                raise KitError(f"cannot read secret {mount.source}: {exc.strerror}") from None
            info = tarfile.TarInfo(str(target).lstrip("/"))
            info.size, info.mode, info.uid, info.gid = len(data), mode, uid, gid
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def copy_secrets(api: "APIClient", container: str, service: Service) -> None:
    """Write the secrets into a created container (before it starts)."""
    if not service.secrets():
        return
    api.put_archive(container, "/", secrets_archive(service, service_owner(api, service)))

"""The site's copy on an ssh:// engine's host, read through the Engine API instead of a shell session.

The no-op check must know the copy `sync_site` left there is still the local
one (its marker holds the digest). Reading a file over SSH takes a session,
and every session runs the login's shell with its rc files (0.3 s and more);
the engine reads it for free: a container that is created, never started,
binds the copy read-only, and `GET /containers/…/archive` returns the marker
(the engine mounts the bind for the read; a removed copy is a failed read,
so the full path runs). It is a one-off container of the project (not a
service: `status` and the plan never see it); `kitctl down` removes it.
"""

from __future__ import annotations

import io
import tarfile
from typing import TYPE_CHECKING
from urllib.parse import quote

from kitcore import __version__
from kitctl.deploy import labels as L
from kitctl.deploy.remote import MARKER

if TYPE_CHECKING:
    from docker import APIClient

    from kitctl.deploy.compose import Project
    from kitctl.deploy.engine_socket import EngineSocket

MOUNT = "/kitctl-site-copy"
ROLE = "io.kitctl.role"
READER = "site-copy-reader"


def reader_name(project_name: str) -> str:
    return f"{project_name}_kitctl_copy"


def ensure_reader(api: "APIClient", project: "Project", destination: str) -> None:
    """(Re)create the reader when it is absent or binds another directory or image (after an upgrade)."""
    from docker.errors import NotFound
    from docker.types import Mount

    image, name = min(s.image for s in project.services.values()), reader_name(project.name)
    try:
        found = api.inspect_container(name)
    except NotFound:
        found = None
    if found is not None:
        sources = [m.get("Source") for m in found.get("Mounts") or []]
        if sources == [destination] and found["Config"]["Image"] == image:
            return
        api.remove_container(name, force=True)
    labels = {L.PROJECT: project.name, L.ONEOFF: "True", ROLE: READER, L.MANAGED_BY: f"kitctl {__version__}",
              **({L.SITE: project.site_id} if project.site_id else {})}
    api.create_container(image, command=["true"], name=name, labels=labels, network_disabled=True,
                         host_config=api.create_host_config(
                             mounts=[Mount(MOUNT, destination, type="bind", read_only=True)]))


def remove_reader(api: "APIClient", project_name: str) -> bool:
    """`kitctl down`: the project's reader, found by its labels, removed; True when there was one."""
    found = api.containers(all=True, filters={"label": [f"{L.PROJECT}={project_name}", f"{ROLE}={READER}"]})
    for c in found:
        api.remove_container(c["Id"], force=True)
    return bool(found)


def copied_digest(engine: "EngineSocket", project_name: str, destination: str) -> str | None:
    """The digest the copy's marker holds, read by the engine; None when there is no reader for `destination`,
    no copy or no marker."""
    name = quote(reader_name(project_name))
    found = engine.get(f"/containers/{name}/json")
    if not found or [m.get("Source") for m in found.get("Mounts") or []] != [destination]:
        return None
    status, body = engine.raw(f"/containers/{name}/archive?path={quote(f'{MOUNT}/{MARKER}')}")
    if status != 200:
        return None
    try:
        with tarfile.open(fileobj=io.BytesIO(body)) as tar:
            member = tar.next()
            data = tar.extractfile(member) if member is not None else None
            return data.read(4096).decode("utf-8", "replace").strip() if data is not None else None
    except tarfile.TarError:
        return None

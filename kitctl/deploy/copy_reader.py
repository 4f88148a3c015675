"""The site's copy on an ssh:// engine's host, read through the Engine API instead of a shell session.

The no-op check must know the copy `sync_site` left there is still the local
one (its marker holds the digest). Reading a file over SSH takes a session,
and every session runs the login's shell with its rc files (0.3 s and more);
the engine reads it for free: a container that is created, never started,
binds the copy read-only: `HEAD /containers/…/archive` gives the marker's
stat (the engine mounts the bind to answer; a removed copy is a failed
answer, so the full path runs), and `GET` its content when the stat is not the
one noted the last time the content matched (reading costs the engine about
three times the stat). It is a one-off container of the project (not a
service: `status` and the plan never see it); `kitctl down` removes it.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from typing import TYPE_CHECKING
from urllib.parse import quote

from kitcore import __version__
from kitctl.deploy import labels as L
from kitctl.deploy.remote import MARKER
from kitcore.sitedir import SiteDir

if TYPE_CHECKING:
    from docker import APIClient

    from kitctl.deploy.compose import Project
    from kitctl.deploy.engine_socket import EngineSocket

MOUNT = "/kitctl-site-copy"
NOTES = "remote-copy.json"  # in the site's .kitctl/: the marker's stat when its content last matched
ROLE = "io.kitctl.role"
READER = "site-copy-reader"


def reader_name(project_name: str, destination: str) -> str:
    """Named for the directory it binds: a reader of another `--remote-dir` is not found (not a current copy)."""
    return f"{project_name}_kitctl_copy_{hashlib.sha256(destination.encode()).hexdigest()[:12]}"


def ensure_reader(api: "APIClient", project: "Project", destination: str) -> None:
    """The reader of `destination` with the stack's image, replacing the project's others (another directory,
    or an image an upgrade replaced)."""
    from docker.types import Mount

    image, name = min(s.image for s in project.services.values()), reader_name(project.name, destination)
    kept = False
    for c in _readers(api, project.name):
        if c["Names"][0].lstrip("/") == name and c.get("Image") == image and not kept:
            kept = True
        else:
            api.remove_container(c["Id"], force=True, v=True)  # with the anonymous volumes its image declares
    if kept:
        return
    labels = {L.PROJECT: project.name, L.SERVICE: READER, L.ONEOFF: "True", ROLE: READER,
              L.MANAGED_BY: f"kitctl {__version__}",
              **({L.SITE: project.site_id} if project.site_id else {})}
    api.create_container(image, command=["true"], name=name, labels=labels, network_disabled=True,
                         host_config=api.create_host_config(
                             mounts=[Mount(MOUNT, destination, type="bind", read_only=True)]))


def remove_reader(api: "APIClient", project_name: str) -> bool:
    """`kitctl down`: the project's readers, found by their labels, removed; True when there was one."""
    found = _readers(api, project_name)
    for c in found:
        api.remove_container(c["Id"], force=True, v=True)  # with the anonymous volumes its image declares
    return bool(found)


def _readers(api: "APIClient", project_name: str) -> list[dict]:
    return api.containers(all=True, filters={"label": [f"{L.PROJECT}={project_name}", f"{ROLE}={READER}"]})


def copy_is_current(engine: "EngineSocket", project: "Project", destination: str, local_digest: str) -> bool:
    """Does the copy at `destination` hold `local_digest`? The marker's stat (a HEAD: the engine does not
    archive it) against what was noted when its content was last read and matched; a marker written since
    (another size, mode or mtime to the nanosecond), or never read, is read whole once more."""
    stat = engine.path_stat(reader_name(project.name, destination), f"{MOUNT}/{MARKER}")
    if stat is None:
        return False
    seen = {"destination": destination, "digest": local_digest, "stat": stat}
    notes = SiteDir(project.working_dir).cache / NOTES
    try:
        if json.loads(notes.read_text(encoding="utf-8")) == seen:
            return True
    except (OSError, ValueError):
        pass
    if copied_digest(engine, project.name, destination) != local_digest:
        return False
    try:
        notes.parent.mkdir(exist_ok=True)
        notes.write_text(json.dumps(seen), encoding="utf-8")
    except OSError:
        pass  # a read-only site directory: the next check reads the marker whole again
    return True


def copied_digest(engine: "EngineSocket", project_name: str, destination: str) -> str | None:
    """The digest the copy's marker holds, read by the engine; None when there is no reader for `destination`,
    no copy or no marker."""
    name = quote(reader_name(project_name, destination))
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

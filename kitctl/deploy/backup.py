"""Backup and restore: the site database (pg_dump inside the db container) plus the
site directory, in one archive (see `backup_archive`), encrypted to age recipients
unless the operator asks for a plain one.

The archive holds the site's secrets, so it is written mode 0600 and never over
an existing file. Restore checks every checksum before it writes anything.
"""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from kitcore import __version__
from kitctl.deploy import engine_exec
from kitctl.deploy.backup_archive import (
    DUMP, FORMAT, SITE, dir_entry_for, entry_for, plain_archive, read_archive, sha256, write_archive,
)
from kitctl.deploy.compose import Project
from kitcore.errors import InvalidInput, KitError

if TYPE_CHECKING:
    import docker

SKIP = {".kitctl-upload"}


def backup(client: "docker.DockerClient", project: Project, out: Path, *, recipients: Sequence[object] | None,
           db_service: str = "db") -> dict[str, Any]:
    """Write the archive (age-encrypted to `recipients`; plain when None); return its manifest."""
    from kitctl.deploy.operate import _container

    if out.exists():
        raise InvalidInput(f"{out} already exists; choose a new file name")
    from kitctl.deploy.backup_volumes import save_volumes
    from kitctl.deploy.swarm.ops import SWARM, orchestrator_of, require_backup_tasks_here

    orchestrator = orchestrator_of(client.api, project)
    if orchestrator == SWARM:
        require_backup_tasks_here(client.api, project, db_service)
    container = _container(client, project, db_service, required=True)
    database = dict(project.services[db_service].environment).get("POSTGRES_DB", "kit")

    with tempfile.TemporaryDirectory(prefix="kitctl-backup-") as tmp:
        dump = Path(tmp) / "site.dump"
        _pg_dump(client, container, database, dump)
        volumes, volume_files = save_volumes(client, project, db_service, Path(tmp))
        manifest, members = site_manifest(project, db_service, database, dump, volumes)
        manifest["orchestrator"] = orchestrator  # restore brings it back the same way
        write_archive(out, manifest, {**members, **volume_files}, recipients)
    return manifest


def site_manifest(project: Project, db_service: str, database: str, dump: Path,
                  volumes: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Path]]:
    """The manifest of a backup of `project` with `dump`, and its members (archive name → file or directory).

    `volumes` is what `backup_volumes.save_volumes` recorded; their files are added by the caller.
    """
    root = project.working_dir
    dirs = {SITE: root, **{f"{SITE}/{rel}": root / rel for rel in _site_dirs(root)}}
    files = {f"{SITE}/{rel}": root / rel for rel in _site_files(root)}
    manifest = {
        "format": FORMAT, "kit_version": __version__, "project": project.name,
        "created": int(time.time()),
        "db": {"service": db_service, "database": database, "file": DUMP, "sha256": sha256(dump),
               "bytes": dump.stat().st_size},
        "files": {name: entry_for(path).as_json() for name, path in files.items()},
        "dirs": {name: {k: v for k, v in dir_entry_for(path).as_json().items() if k != "sha256"}
                 for name, path in dirs.items()},
        "volumes": volumes or {},
    }
    return manifest, {DUMP: dump, **dirs, **files}


def _pg_dump(client: "docker.DockerClient", container: str, database: str, dest: Path) -> None:
    """Custom-format dump over the container's local socket (no password leaves it)."""
    api = client.api
    exec_id = engine_exec.create(api, container, ["pg_dump", "-U", "postgres", "-Fc", "-d", database])
    errors = b""
    with dest.open("wb") as f:
        for stream, data in engine_exec.start(api, exec_id):
            if stream == engine_exec.STDOUT:
                f.write(data)
            else:
                errors += data
    code = api.exec_inspect(exec_id).get("ExitCode")
    if code != 0:
        line = (errors.decode("utf-8", "replace").strip().splitlines() or [f"exit code {code}"])[-1]
        raise KitError(f"pg_dump failed in the db container: {line}")


def _site_files(root: Path) -> list[str]:
    found = []
    for dirpath, _dirs, names in _walk(root):
        for name in sorted(names):
            path = Path(dirpath) / name
            if path.is_file() and not path.is_symlink() and not _skipped(name):
                found.append(path.relative_to(root).as_posix())
    return sorted(found)


def _site_dirs(root: Path) -> list[str]:
    """Every directory under the site directory (not links), so restore gives each its mode and owner."""
    return sorted((Path(dirpath) / name).relative_to(root).as_posix()
                  for dirpath, dirs, _names in _walk(root) for name in dirs)


def _walk(root: Path):
    for dirpath, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not _skipped(d) and not (Path(dirpath) / d).is_symlink())
        yield dirpath, dirs, names


def _skipped(name: str) -> bool:
    return any(name.endswith(s) for s in SKIP)


def load_dump(client: "docker.DockerClient", project: Project, dump: Path, db_service: str, database: str) -> None:
    """Copy the dump into the db container and pg_restore it (objects keep their owners)."""
    from kitctl.deploy.operate import _container, _exec

    container = _container(client, project, db_service, required=True)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(dump, arcname="kitctl-restore.dump")
    client.api.put_archive(container, "/tmp", buffer.getvalue())
    code, output = _exec(client, container, ["pg_restore", "-U", "postgres", "-d", database, "--clean", "--if-exists",
                                             "--exit-on-error", "/tmp/kitctl-restore.dump"])
    _exec(client, container, ["rm", "-f", "/tmp/kitctl-restore.dump"])
    if code != 0:
        raise KitError(f"pg_restore failed: {(output.strip().splitlines() or ['?'])[-1]}")


def check_fresh(client: "docker.DockerClient", project: Project) -> None:
    """Restore goes onto a fresh host: no containers of the project, no data volumes yet."""
    from docker.errors import NotFound

    from kitctl.deploy import labels as L

    if client.api.containers(all=True, filters=L.project_filter(project.name)):
        raise InvalidInput(f"project {project.name} already has containers here; restore needs a fresh host "
                           "(or `kitctl down --volumes` first)")
    for vol in project.volumes.values():
        try:
            client.api.inspect_volume(vol.name)
        except NotFound:
            continue
        raise InvalidInput(f"volume {vol.name} already exists; restore needs a fresh host (or `kitctl down --volumes` first)")


def _dir_name(site_dir: Path) -> str:
    from kitctl.deploy.compose import _dir_project_name

    return _dir_project_name(site_dir)


def staging_dir(site_dir: Path) -> Path:
    return Path(tempfile.mkdtemp(prefix=".kitctl-restore-", dir=site_dir.parent))


def restore(archive: Path, site_dir: Path, options: Any, reporter: Any, identity: Path | None = None) -> dict[str, Any]:
    """Unpack the site directory, start the db alone, load the dump, then bring the whole stack up.

    `options` is an `UpOptions` for `site_dir` (host, licence, keys, timeout…); `identity` is the age
    identity file an encrypted archive is opened with.
    """
    import dataclasses
    import shutil

    from kitctl.deploy.compose import load_project
    from kitctl.engine import connect
    from kitctl.deploy.up import up

    if site_dir.exists() and any(site_dir.iterdir()):
        raise InvalidInput(f"{site_dir} is not empty; restore into a new site directory")
    site_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_dir(site_dir)
    try:
        (staging / "decrypted").mkdir(mode=0o700)
        plain, encrypted = plain_archive(archive, staging / "decrypted", identity)
        if not encrypted:
            reporter.note(f"{archive} is a plain (unencrypted) backup")
        unpacked = staging / "unpacked"
        manifest = read_archive(plain, unpacked)
        db = manifest["db"]
        project_dir = unpacked / SITE
        project = load_project(project_dir, project_name=manifest["project"])
        if load_project(project_dir, project_name=None).name != manifest["project"] and \
                _dir_name(site_dir) != manifest["project"]:
            raise InvalidInput(f"name the site directory {manifest['project']!r}: the project name comes from it")
        client = connect(options.host)
        swarm = manifest.get("orchestrator") == "swarm"
        if swarm:
            from kitctl.deploy.swarm.ops import check_fresh_swarm

            check_fresh_swarm(client.api, project)
        else:
            check_fresh(client, project)
        if site_dir.exists():
            site_dir.rmdir()
        shutil.move(str(project_dir), str(site_dir))
        if SITE not in manifest.get("dirs", {}):  # older archives recorded no directories
            site_dir.chmod(0o700)
        project = load_project(site_dir)
        reporter.note(f"restoring {project.name} from a backup of {time.strftime('%Y-%m-%d %H:%M', time.gmtime(manifest['created']))} UTC")
        from kitctl.deploy.swarm import restore as on_swarm

        if swarm:  # the database's service alone, on this node
            on_swarm.start_database(client, project, db["service"], options, reporter)
        else:
            up(dataclasses.replace(options, site_dir=site_dir, services=[db["service"]]), reporter)
        load_dump(client, project, unpacked / db["file"], db["service"], db["database"])
        reporter.note(f"database {db['database']} restored ({db['bytes']} bytes)")
        from kitctl.deploy.backup_volumes import seed_volumes

        seed_volumes(client, project, manifest.get("volumes", {}), unpacked,
                     project.services[db["service"]].image, reporter)
        if swarm:
            on_swarm.start_site(project, options, reporter)
        else:
            up(dataclasses.replace(options, site_dir=site_dir, services=None), reporter)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifest

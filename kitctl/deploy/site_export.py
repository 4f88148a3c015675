"""`kitctl export DIR`: the licensee's exit export, unpacked from the storefront's tar into a new directory.

The storefront writes the archive (`python -m storefront export`, see
storefront.exporting) in its running container, the only place the site key
and the database meet; kitctl streams it out of `docker exec` and writes each
file mode 0600 into a directory it creates (0700). Only the files the export
names are taken from the stream (no paths, links or devices), and every one
is checked against the archive's SHA256SUMS once written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from kitctl.deploy import engine_exec
from kitctl.deploy.backup_archive import sha256
from kitcore.errors import InvalidInput, KitError
from kitcore.export_archive import SUMS

if TYPE_CHECKING:
    import docker

    from kitctl.deploy.compose import Project

COMMAND = ["python", "-m", "storefront", "export"]
FILE_NAME = re.compile(r"^(?:[a-z_]{1,32}\.(?:csv|json)|SHA256SUMS)\Z")


def prepare(target: Path) -> bool:
    """A private directory for the export, new or empty (nothing is overwritten); whether it was made here."""
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InvalidInput(f"{target} exists and is not an empty directory: choose a new one")
    if not target.parent.is_dir():
        raise InvalidInput(f"{target.parent} does not exist")
    created = not target.exists()
    target.mkdir(mode=0o700, exist_ok=True)
    target.chmod(0o700)
    return created


def _discard(target: Path, created: bool) -> None:
    """A partial export is no export: its files go, and the directory too if kitctl made it."""
    if created:
        shutil.rmtree(target, ignore_errors=True)
        return
    for path in target.iterdir():
        path.unlink(missing_ok=True)


class _Stdout:
    """The exec's stdout as a file tarfile can read; stderr kept aside for the error message."""

    def __init__(self, frames: Iterator[tuple[int, bytes]]) -> None:
        self.frames = frames
        self.buffer = b""
        self.stderr = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self.buffer) < size:
            try:
                stream, data = next(self.frames)
            except StopIteration:
                break
            if stream == engine_exec.STDOUT:
                self.buffer += data
            else:
                self.stderr = (self.stderr + data)[-4096:]
        if size < 0:
            size = len(self.buffer)
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data


def unpack(stream: Any, target: Path) -> list[str]:
    """Write the export's files from a tar stream into `target` (0600 each); their names."""
    names = []
    try:
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                if not member.isfile() or not FILE_NAME.match(member.name) or member.name in names:
                    raise KitError(f"the export holds an unexpected entry {member.name[:80]!r}; nothing more written")
                source = archive.extractfile(member)
                assert source is not None
                fd = os.open(target / member.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(source, out, 1 << 20)
                names.append(member.name)
    except tarfile.TarError as exc:
        raise KitError(f"the export stream is not a whole archive: {exc}") from None
    return names


def verify(target: Path, names: list[str]) -> dict[str, Any]:
    """Every file against SHA256SUMS (and none left out of it); the manifest."""
    if SUMS not in names:
        raise KitError("the export has no SHA256SUMS: it is incomplete")
    listed = {}
    for line in (target / SUMS).read_text(encoding="utf-8").splitlines():
        digest, _, name = line.partition("  ")
        listed[name] = digest
    if set(listed) != set(names) - {SUMS}:
        raise KitError("the export's files and its SHA256SUMS do not match")
    for name, digest in listed.items():
        if sha256(target / name) != digest:
            raise KitError(f"{name} does not match its SHA-256 in SHA256SUMS")
    return json.loads((target / "manifest.json").read_text(encoding="utf-8"))


def _storefront_failed(code: int | None, stderr: bytes) -> None:
    """The storefront's own one-line reason, when its export failed (a broken stream is only the symptom)."""
    if code != 0:
        problem = stderr.decode("utf-8", "replace").strip().splitlines() or [f"exit code {code}"]
        raise KitError(f"the storefront's export failed: {problem[-1].removeprefix('error: ')[:200]}")


def export(client: "docker.DockerClient", project: "Project", target: Path) -> dict[str, Any]:
    """Run the storefront's export in its running container; the files in `target`, checked; the manifest."""
    from kitctl.deploy.admin import STOREFRONT
    from kitctl.deploy.identity import check_ours
    from kitctl.deploy.operate import running_container

    check_ours(client.api, project)
    container = running_container(client, project, STOREFRONT)
    target = target.expanduser()
    created = prepare(target)
    api = client.api
    exec_id = engine_exec.create(api, container, COMMAND)
    stdout = _Stdout(engine_exec.start(api, exec_id))
    try:
        try:
            names = unpack(stdout, target)
        finally:
            stdout.read()  # the rest (tar padding) and stderr
            _storefront_failed(api.exec_inspect(exec_id).get("ExitCode"), stdout.stderr)
        return verify(target, names)
    except BaseException:
        _discard(target, created)
        raise

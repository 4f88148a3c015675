"""The backup archive itself: a tar.gz with a manifest, optionally age-encrypted, and its safe unpacking.

The manifest records, for every member, its sha256, its mode and its owner.
Unpacking trusts nothing in the archive beyond that record: every member must be
a plain relative file the manifest names (no links, devices, `..` or absolute
paths), every checksum is checked before anything is written, and each file gets

    mode = recorded mode & stored member mode & 0o777

— never wider than the manifest records, never setuid/setgid/sticky. An archive
that would make a file world-writable is refused whole, and files under
`site/secrets/` are never wider than 0600. Directories the manifest names
(`dirs`, format 3) get their recorded mode and owner by the same rule, `secrets/`
never wider than 0700; any other directory is created 0700. The owner is
restored only when kitctl runs as root. Volume archives (`volumes`, format 3:
`volumes/<key>.tar`, what the engine's archive API gave) are checked like files
and unpacked into a volume by the engine (kitctl.deploy.backup_volumes).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any, Sequence

from kitcore.errors import InvalidInput
from kitcore.sitedir import SECRETS

FORMAT = 3
READABLE_FORMATS = (1, 2, 3)
MANIFEST = "manifest.json"
DUMP = "db/site.dump"
SITE = "site"
SECRETS_PREFIX = f"{SITE}/{SECRETS}/"
SITE_PREFIX = f"{SITE}/"  # the manifest's `files` and `dirs` all live here
SECRETS_DIR = f"{SITE}/{SECRETS}"
VOLUMES_PREFIX = "volumes/"
NEVER_RECORDED = 0o002  # world-write is never recorded, so an archive asking for it was made by hand


@dataclass(frozen=True)
class Entry:
    """What the manifest records for one member."""

    sha256: str
    mode: int
    uid: int | None = None
    gid: int | None = None
    is_dir: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "mode": f"{self.mode:04o}", "uid": self.uid, "gid": self.gid}


def entry_for(path: Path) -> Entry:
    st = path.stat()
    return Entry(sha256(path), st.st_mode & 0o777 & ~NEVER_RECORDED, st.st_uid, st.st_gid)


def dir_entry_for(path: Path) -> Entry:
    st = path.stat()
    return Entry("", st.st_mode & 0o777 & ~NEVER_RECORDED, st.st_uid, st.st_gid, is_dir=True)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_archive(out: Path, manifest: dict[str, Any], members: dict[str, Path],
                  recipients: Sequence[object] | None) -> None:
    """Write `members` (archive name → file) and the manifest to `out` (new file, mode 0600).

    With `recipients` the tar.gz is age-encrypted to them; `None` writes it plain.
    """
    if out.exists():
        raise InvalidInput(f"{out} already exists; choose a new file name")
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as raw:
            if recipients is None:
                _write_tar(raw, manifest, members)
            else:
                from kitctl.deploy.backup_keys import encrypt_file

                with tempfile.TemporaryFile(dir=out.parent) as plain:
                    _write_tar(plain, manifest, members)
                    plain.seek(0)
                    encrypt_file(plain, raw, recipients)
    except BaseException:
        out.unlink(missing_ok=True)
        raise


def _write_tar(raw: IO[bytes], manifest: dict[str, Any], members: dict[str, Path]) -> None:
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        data = json.dumps(manifest, indent=2, sort_keys=True).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mode, info.mtime = len(data), 0o600, manifest["created"]
        tar.addfile(info, io.BytesIO(data))
        for name, path in members.items():
            tar.add(path, arcname=name, recursive=False)


def plain_archive(archive: Path, work: Path, identity: Path | None) -> tuple[Path, bool]:
    """The archive as a plain tar.gz: itself, or decrypted into the private directory `work`.

    Returns (path, was_encrypted).
    """
    from kitctl.deploy.backup_keys import decrypt_file, is_encrypted, load_identities

    try:
        with archive.open("rb") as f:
            head = f.read(64)
    except OSError as exc:
        raise InvalidInput(f"cannot read {archive}: {exc.strerror}") from None
    if not is_encrypted(head):
        return archive, False
    if identity is None or not identity.exists():
        where = f" ({identity} does not exist)" if identity else ""
        raise InvalidInput(f"{archive} is encrypted; pass --identity FILE, the age identity it was made for{where}")
    identities = load_identities(identity)
    plain = work / "archive.tar.gz"
    fd = os.open(plain, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with archive.open("rb") as sealed, os.fdopen(fd, "wb") as out:
        decrypt_file(sealed, out, identities, str(archive), identity)
    return plain, True


def read_archive(archive: Path, dest: Path) -> dict[str, Any]:
    """Verify a plain archive and unpack it into `dest` (new or empty): site files under dest/site, dump at
    dest/db. Nothing is written unless every member passes."""
    try:
        tar = tarfile.open(archive, mode="r:gz")
    except (OSError, tarfile.TarError) as exc:
        raise InvalidInput(f"{archive} is not a kitctl backup: {exc}") from None
    try:
        with tar:
            manifest = _manifest(tar, archive)
            expected = _entries(manifest, archive)
            members = _checked_members(tar, expected, archive)
            modes = {name: restored_mode(name, expected[name].mode, member.mode, archive)
                     for name, member in members.items()}
            files = {name: member for name, member in members.items() if not expected[name].is_dir}
            for name, member in files.items():
                _verify(tar, member, expected[name].sha256, archive)
            dirs = sorted(name for name in members if expected[name].is_dir)
            for name in dirs:
                _private_parents(dest / name)
            for name, member in files.items():
                _extract(tar, member, dest / name, modes[name], expected[name])
            for name in reversed(dirs):  # deepest first: a read-only directory is closed after its contents
                _set_owner_and_mode(dest / name, modes[name], expected[name])
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InvalidInput(f"{archive} is damaged: {exc}") from None
    return manifest


def restored_mode(name: str, recorded: int, stored: int, archive: Path | str) -> int:
    """The mode a member is restored with (see the module docstring for the rule)."""
    mode = recorded & stored & 0o777
    if mode & 0o002:
        raise InvalidInput(f"{archive}: refusing {name!r}, which the archive makes world-writable "
                           f"({mode:04o}); nothing was restored")
    if name.startswith(SECRETS_PREFIX):
        mode &= 0o600
    if name == SECRETS_DIR:
        mode &= 0o700
    return mode


def _manifest(tar: tarfile.TarFile, archive: Path) -> dict[str, Any]:
    try:
        member = tar.getmember(MANIFEST)
        manifest = json.loads(tar.extractfile(member).read())  # type: ignore[union-attr]
    except (KeyError, ValueError, AttributeError):
        raise InvalidInput(f"{archive} has no readable {MANIFEST}; not a kitctl backup") from None
    if not isinstance(manifest, dict) or manifest.get("format") not in READABLE_FORMATS:
        raise InvalidInput(f"{archive}: unsupported backup format {manifest.get('format') if isinstance(manifest, dict) else '?'}")
    return manifest


def _entries(manifest: dict[str, Any], archive: Path) -> dict[str, Entry]:
    """Every member the manifest records (format 1 recorded checksums only: 0600 for secrets, else 0644)."""
    try:
        db = manifest["db"]
        if db["file"] != DUMP:
            raise ValueError
        entries = {DUMP: Entry(str(db["sha256"]), 0o600)}
        files = manifest["files"]
        if not isinstance(files, dict):
            raise ValueError
        for name, recorded in files.items():
            if not isinstance(name, str) or not name.startswith(SITE_PREFIX):
                raise ValueError
            entries[name] = _entry(name, recorded)
        for name, recorded in _mapping(manifest, "dirs").items():
            if not isinstance(name, str) or not (name == SITE or name.startswith(SITE_PREFIX)) or name in entries:
                raise ValueError
            entries[name] = dataclasses.replace(_entry(name, {**recorded, "sha256": ""}), is_dir=True)
        for key, volume in _mapping(manifest, "volumes").items():
            if volume["file"] != f"{VOLUMES_PREFIX}{key}.tar" or "/" in key or key in ("", ".", ".."):
                raise ValueError
            entries[volume["file"]] = Entry(str(volume["sha256"]), 0o600)
    except (KeyError, TypeError, ValueError):
        raise InvalidInput(f"{archive}: {MANIFEST} is malformed (damaged or edited archive)") from None
    return entries


def _mapping(manifest: dict[str, Any], key: str) -> dict[str, Any]:
    """An optional manifest key of format 3 (absent in older archives)."""
    found = manifest.get(key, {})
    if not isinstance(found, dict):
        raise ValueError
    return found


def _entry(name: str, recorded: Any) -> Entry:
    if isinstance(recorded, str):  # format 1
        return Entry(recorded, 0o600 if name.startswith(SECRETS_PREFIX) else 0o644)
    mode = int(recorded["mode"], 8)
    uid, gid = recorded.get("uid"), recorded.get("gid")
    for owner in (uid, gid):
        if owner is not None and (not isinstance(owner, int) or isinstance(owner, bool) or not 0 <= owner < 2**31):
            raise ValueError
    if not 0 <= mode <= 0o7777:
        raise ValueError
    return Entry(str(recorded["sha256"]), mode, uid, gid)


def _checked_members(tar: tarfile.TarFile, expected: dict[str, Entry], archive: Path) -> dict[str, tarfile.TarInfo]:
    members: dict[str, tarfile.TarInfo] = {}
    for member in tar.getmembers():
        if member.name == MANIFEST:
            continue
        entry = expected.get(member.name)
        _safe_member(member, archive, directory=entry is not None and entry.is_dir)
        if member.name in members:
            raise InvalidInput(f"{archive}: {member.name!r} appears twice (damaged or edited archive)")
        members[member.name] = member
    if set(members) != set(expected):
        raise InvalidInput(f"{archive}: members do not match the manifest (damaged or edited archive)")
    return members


def _safe_member(member: tarfile.TarInfo, archive: Path, directory: bool = False) -> None:
    """A plain relative file, or a directory where the manifest records one."""
    path = PurePosixPath(member.name)
    kind_ok = member.isdir() if directory else member.isfile()
    if not kind_ok or path.is_absolute() or ".." in path.parts or "\\" in member.name:
        raise InvalidInput(f"{archive}: refusing member {member.name!r} (not a plain relative file); "
                           "nothing was restored")


def _verify(tar: tarfile.TarFile, member: tarfile.TarInfo, expected: str, archive: Path) -> None:
    digest = hashlib.sha256()
    source = tar.extractfile(member)
    assert source is not None  # a regular file (checked by _safe_member)
    for chunk in iter(lambda: source.read(1 << 16), b""):
        digest.update(chunk)
    if digest.hexdigest() != expected:
        raise InvalidInput(f"{archive}: checksum mismatch for {member.name}; nothing was restored")


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path, mode: int, entry: Entry) -> None:
    """Write one member: created 0600 without following links, then its owner (as root) and its mode."""
    _private_parents(target.parent)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        source = tar.extractfile(member)
        assert source is not None
        shutil.copyfileobj(source, out, 1 << 16)
        if os.geteuid() == 0 and entry.uid is not None and entry.gid is not None:
            os.fchown(out.fileno(), entry.uid, entry.gid)
        os.fchmod(out.fileno(), mode)


def _set_owner_and_mode(directory: Path, mode: int, entry: Entry) -> None:
    """A restored directory's recorded owner (as root) and mode, never through a link."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        if os.geteuid() == 0 and entry.uid is not None and entry.gid is not None:
            os.fchown(fd, entry.uid, entry.gid)
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


def _private_parents(directory: Path) -> None:
    missing = []
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for path in reversed(missing):
        path.mkdir(mode=0o700)
        os.chmod(path, 0o700)

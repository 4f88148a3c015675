"""Restore trusts nothing in an archive beyond the manifest's record: modes are never widened, nothing
world-writable, secrets stay private, and no member escapes the restore directory."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from kitcore.errors import InvalidInput
from kitctl.deploy.backup import read_archive, site_manifest
from kitctl.deploy.backup_archive import write_archive
from tests.security.backup_support import make_site

DUMP = b"PGDMP fake dump"


def craft(path: Path, members: list[tuple[tarfile.TarInfo, bytes]], files: dict, fmt: int = 2) -> Path:
    """An archive made by hand: the manifest says `files`, the tar holds `members`."""
    manifest = {"format": fmt, "kit_version": "0", "project": "shop", "created": 0,
                "db": {"service": "db", "database": "kit", "file": "db/site.dump",
                       "sha256": hashlib.sha256(DUMP).hexdigest(), "bytes": len(DUMP)},
                "files": files}
    with tarfile.open(path, "w:gz") as tar:
        for info, data in [(_info("manifest.json", 0o600), json.dumps(manifest).encode()),
                           (_info("db/site.dump", 0o600), DUMP), *members]:
            if info.isfile():
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return path


def _info(name: str, mode: int, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mode, info.type, info.linkname = mode, kind, link
    return info


def recorded(data: bytes, mode: int, uid: int | None = None, gid: int | None = None) -> dict:
    return {"sha256": hashlib.sha256(data).hexdigest(), "mode": f"{mode:04o}", "uid": uid, "gid": gid}


def mode_of(path: Path) -> int:
    return path.stat().st_mode & 0o7777


def test_a_member_stored_0777_in_an_old_archive_is_not_restored_0777(tmp_path: Path) -> None:
    data = b"body {}"
    archive = craft(tmp_path / "a.tgz", [(_info("site/branding/theme.css", 0o777), data)],
                    {"site/branding/theme.css": hashlib.sha256(data).hexdigest()}, fmt=1)
    read_archive(archive, tmp_path / "out")
    assert mode_of(tmp_path / "out" / "site" / "branding" / "theme.css") == 0o644


def restored(tmp_path: Path, name: str, stored: int, recorded_mode: int) -> int:
    """The mode `name` gets from an archive that stores it with `stored` and records `recorded_mode`."""
    data = b"content"
    read_archive(craft(tmp_path / "a.tgz", [(_info(name, stored), data)], {name: recorded(data, recorded_mode)}),
                 tmp_path / "out")
    return mode_of(tmp_path / "out" / name)


def test_the_restored_mode_is_never_wider_than_the_manifest_records(tmp_path: Path) -> None:
    assert restored(tmp_path, "site/branding/theme.css", stored=0o6775, recorded_mode=0o640) == 0o640


def test_nor_wider_than_the_member_itself(tmp_path: Path) -> None:
    assert restored(tmp_path, "site/hook.sh", stored=0o700, recorded_mode=0o755) == 0o700


def test_an_archive_that_asks_for_a_world_writable_file_is_refused_whole(tmp_path: Path) -> None:
    data = b"x"
    archive = craft(tmp_path / "a.tgz", [(_info("site/compose.yaml", 0o777), data)],
                    {"site/compose.yaml": recorded(data, 0o777)})
    with pytest.raises(InvalidInput, match="world-writable"):
        read_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_secrets_stay_0600_in_a_0700_directory_whatever_the_archive_says(tmp_path: Path) -> None:
    assert restored(tmp_path, "site/secrets/site_key", stored=0o644, recorded_mode=0o644) == 0o600
    assert mode_of(tmp_path / "out" / "site" / "secrets") == 0o700


def test_the_recorded_owner_is_restored_when_running_as_root(tmp_path: Path) -> None:
    data = b"x"
    archive = craft(tmp_path / "a.tgz", [(_info("site/site.json", 0o644), data)],
                    {"site/site.json": recorded(data, 0o644, uid=12345, gid=23456)})
    read_archive(archive, tmp_path / "out")
    st = (tmp_path / "out" / "site" / "site.json").stat()
    expected = (12345, 23456) if os.geteuid() == 0 else (os.geteuid(), os.getegid())
    assert (st.st_uid, st.st_gid) == expected


def test_a_real_backup_round_trips_modes_and_the_private_secrets_directory(tmp_path: Path) -> None:
    site, _key = make_site(tmp_path)
    (site / "branding" / "theme.css").chmod(0o640)
    (site / "Caddyfile").chmod(0o666)  # world-write is never recorded
    dump = tmp_path / "site.dump"
    dump.write_bytes(DUMP)
    project = SimpleNamespace(working_dir=site, name="shop")
    manifest, members = site_manifest(project, "db", "kit", dump)  # type: ignore[arg-type]
    assert manifest["files"]["site/Caddyfile"]["mode"] == "0664"
    write_archive(tmp_path / "b.tgz", manifest, members, recipients=None)
    read_archive(tmp_path / "b.tgz", tmp_path / "out")
    out = tmp_path / "out" / "site"
    assert mode_of(out / "branding" / "theme.css") == 0o640
    assert mode_of(out / "Caddyfile") == 0o664
    assert mode_of(out / "secrets" / "db_password") == 0o600 and mode_of(out / "secrets") == 0o700


@pytest.mark.parametrize("member", [
    _info("site/../../escaped", 0o644),
    _info("/tmp/kitctl-absolute-escape", 0o644),
    _info("site/link", 0o777, tarfile.SYMTYPE, "/etc/passwd"),
    _info("site/hard", 0o644, tarfile.LNKTYPE, "db/site.dump"),
    _info("site/dev", 0o644, tarfile.CHRTYPE),
    _info("site/dir", 0o755, tarfile.DIRTYPE),
], ids=["dotdot", "absolute", "symlink", "hardlink", "device", "directory"])
def test_members_that_are_not_plain_relative_files_are_refused(tmp_path: Path, member: tarfile.TarInfo) -> None:
    archive = craft(tmp_path / "a.tgz", [(member, b"x")], {member.name: recorded(b"x", 0o644)})
    with pytest.raises(InvalidInput, match="refusing member|malformed"):
        read_archive(archive, tmp_path / "deep" / "out")
    assert not (tmp_path / "deep").exists() and not (tmp_path / "escaped").exists()
    assert not Path("/tmp/kitctl-absolute-escape").exists()


def test_a_member_the_manifest_does_not_name_is_refused(tmp_path: Path) -> None:
    data = b"x"
    archive = craft(tmp_path / "a.tgz", [(_info("site/extra", 0o644), data)], {})
    with pytest.raises(InvalidInput, match="do not match the manifest"):
        read_archive(archive, tmp_path / "out")


def test_a_manifest_naming_files_outside_the_site_is_refused(tmp_path: Path) -> None:
    data = b"x"
    archive = craft(tmp_path / "a.tgz", [(_info("elsewhere/x", 0o644), data)], {"elsewhere/x": recorded(data, 0o644)})
    with pytest.raises(InvalidInput, match="malformed"):
        read_archive(archive, tmp_path / "out")


def test_a_member_given_twice_is_refused(tmp_path: Path) -> None:
    data = b"x"
    archive = craft(tmp_path / "a.tgz", [(_info("site/a", 0o644), data), (_info("site/a", 0o644), data)],
                    {"site/a": recorded(data, 0o644)})
    with pytest.raises(InvalidInput, match="appears twice"):
        read_archive(archive, tmp_path / "out")


def test_directories_round_trip_with_their_mode_and_owner(tmp_path: Path) -> None:
    """The proxy (another uid) must reach branding/ after a restore: directories keep their record."""
    site, _key = make_site(tmp_path)
    (site / "branding").chmod(0o750)
    (site / "fonts").mkdir(mode=0o755)  # an empty directory comes back too
    if os.geteuid() == 0:
        os.chown(site / "branding", 0, 999)
    dump = tmp_path / "site.dump"
    dump.write_bytes(DUMP)
    project = SimpleNamespace(working_dir=site, name="shop")
    manifest, members = site_manifest(project, "db", "kit", dump)  # type: ignore[arg-type]
    assert manifest["dirs"]["site/branding"]["mode"] == "0750" and manifest["dirs"]["site"]["mode"] == "0755"
    write_archive(tmp_path / "b.tgz", manifest, members, recipients=None)
    read_archive(tmp_path / "b.tgz", tmp_path / "out")
    out = tmp_path / "out" / "site"
    assert mode_of(out) == 0o755 and mode_of(out / "branding") == 0o750 and mode_of(out / "fonts") == 0o755
    assert mode_of(out / "secrets") == 0o700
    if os.geteuid() == 0:
        assert (out / "branding").stat().st_gid == 999


def test_a_secrets_directory_recorded_open_comes_back_0700(tmp_path: Path) -> None:
    archive = craft(tmp_path / "a.tgz", [(_info("site", 0o755, tarfile.DIRTYPE), b""),
                                         (_info("site/secrets", 0o755, tarfile.DIRTYPE), b"")], {}, fmt=3)
    _with_dirs(archive, {"site": 0o755, "site/secrets": 0o755})
    read_archive(archive, tmp_path / "out")
    assert mode_of(tmp_path / "out" / "site" / "secrets") == 0o700 and mode_of(tmp_path / "out" / "site") == 0o755


def test_a_world_writable_directory_is_refused_whole(tmp_path: Path) -> None:
    archive = craft(tmp_path / "a.tgz", [(_info("site/branding", 0o777, tarfile.DIRTYPE), b"")], {}, fmt=3)
    _with_dirs(archive, {"site/branding": 0o777})
    with pytest.raises(InvalidInput, match="world-writable"):
        read_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_directory_the_manifest_does_not_record_is_refused(tmp_path: Path) -> None:
    archive = craft(tmp_path / "a.tgz", [(_info("site/branding", 0o755, tarfile.DIRTYPE), b"")], {}, fmt=3)
    _with_dirs(archive, {})
    with pytest.raises(InvalidInput, match="refusing member 'site/branding'"):
        read_archive(archive, tmp_path / "out")


def _with_dirs(archive: Path, dirs: dict[str, int]) -> None:
    """Rewrite a crafted archive's manifest so that it records `dirs`."""
    with tarfile.open(archive, "r:gz") as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else b"") for m in tar.getmembers()]  # type: ignore[union-attr]
    manifest = json.loads(members[0][1])
    manifest["dirs"] = {name: {"mode": f"{mode:04o}", "uid": None, "gid": None} for name, mode in dirs.items()}
    members[0] = (members[0][0], json.dumps(manifest).encode())
    with tarfile.open(archive, "w:gz") as tar:
        for info, data in members:
            if info.isfile():
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)

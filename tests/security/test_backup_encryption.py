"""A stolen backup: `kitctl backup` encrypts to an age recipient by default, and only the identity opens it.

The Docker engine is faked at its API (the db container's `pg_dump`); everything else is the real
CLI, the real archive code and real age encryption (pyrage).
"""

from __future__ import annotations

import base64
import gzip
import tarfile
from pathlib import Path

import pytest

from kitctl.cli import run
from kitctl.deploy.backup_archive import plain_archive, read_archive
from tests.security.backup_support import (
    CARD_KEY, FakeClient, dump_with_sealed_card_key, make_site, unseal_with_found_key, what_a_thief_reads,
)


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    for name in ("KITCTL_SITE_DIR", "KITCTL_DOCKER_HOST", "KITCTL_BACKUP_IDENTITY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # the default identity lands here
    site, key = make_site(tmp_path)
    dump = dump_with_sealed_card_key(key)
    client = FakeClient(dump)
    monkeypatch.setattr("kitctl.engine.connect", lambda *a, **k: client)
    return {"site": site, "key": key, "dump": dump, "client": client, "tmp": tmp_path,
            "identity": tmp_path / "config" / "kitctl" / "backup-identity.txt"}


def test_a_stolen_default_backup_reveals_neither_the_site_key_nor_card_keys(shop: dict, capsys) -> None:
    archive = shop["tmp"] / "shop.backup"
    assert run(["backup", "-o", str(archive), "--site-dir", str(shop["site"])]) == 0
    data = archive.read_bytes()
    readable = what_a_thief_reads(data)
    key_text = base64.b64encode(shop["key"])
    assert key_text not in readable and shop["key"] not in readable
    assert CARD_KEY.encode() not in readable
    assert unseal_with_found_key(readable, shop["dump"]) == []
    assert data.startswith(b"age-encryption.org/v1\n")
    assert archive.stat().st_mode & 0o777 == 0o600
    # the identity was made on the way: 0600 in a 0700 directory, its secret never shown
    identity = shop["identity"]
    assert identity.stat().st_mode & 0o777 == 0o600 and identity.parent.stat().st_mode & 0o777 == 0o700
    secret = [ln for ln in identity.read_text().splitlines() if ln.startswith("AGE-SECRET-KEY-")][0]
    shown = capsys.readouterr()
    assert secret not in shown.out + shown.err
    assert "copy it somewhere off this host" in " ".join(shown.err.split()).lower()


def test_the_identity_opens_it_and_gives_the_site_back(shop: dict, tmp_path: Path) -> None:
    archive = tmp_path / "shop.backup"
    assert run(["backup", "-o", str(archive), "--site-dir", str(shop["site"])]) == 0
    work = tmp_path / "work"
    work.mkdir(mode=0o700)
    plain, encrypted = plain_archive(archive, work, shop["identity"])
    assert encrypted
    manifest = read_archive(plain, tmp_path / "out")
    restored_key = tmp_path / "out" / "site" / "secrets" / "site_key"
    assert base64.b64decode(restored_key.read_text()) == shop["key"]
    assert (tmp_path / "out" / "db" / "site.dump").read_bytes() == shop["dump"]
    assert manifest["project"] == "shop"


def test_backup_to_an_explicit_recipient_needs_no_identity_on_the_host(shop: dict, tmp_path: Path, capsys) -> None:
    elsewhere = tmp_path / "offsite.key"
    assert run(["backup-key", "--identity", str(elsewhere)]) == 0
    recipient = capsys.readouterr().out.strip()
    assert recipient.startswith("age1") and "AGE-SECRET-KEY" not in recipient
    archive = tmp_path / "to-offsite.backup"
    assert run(["backup", "-o", str(archive), "--site-dir", str(shop["site"]), "--recipient", recipient]) == 0
    assert not shop["identity"].exists()  # nothing was created on the host
    work = tmp_path / "w"
    work.mkdir()
    plain, _ = plain_archive(archive, work, elsewhere)
    assert tarfile.is_tarfile(plain)


def test_restore_without_or_with_the_wrong_identity_is_one_line_and_exit_2(shop: dict, tmp_path: Path, capsys) -> None:
    archive = tmp_path / "shop.backup"
    assert run(["backup", "-o", str(archive), "--site-dir", str(shop["site"])]) == 0
    capsys.readouterr()
    target = tmp_path / "restored" / "shop"
    assert run(["restore", str(archive), "--site-dir", str(target), "--identity", str(tmp_path / "none.key")]) == 2
    assert "is encrypted; pass --identity" in capsys.readouterr().err
    other = tmp_path / "other.key"
    assert run(["backup-key", "--identity", str(other)]) == 0
    capsys.readouterr()
    assert run(["restore", str(archive), "--site-dir", str(target), "--identity", str(other)]) == 2
    err = capsys.readouterr().err
    assert "was not encrypted to the identity" in err and len(err.strip().splitlines()) == 1
    assert not target.exists() or not any(target.iterdir())


def test_plain_backup_is_an_explicit_choice_with_a_loud_warning(shop: dict, tmp_path: Path, capsys) -> None:
    archive = tmp_path / "plain.tar.gz"
    assert run(["backup", "-o", str(archive), "--site-dir", str(shop["site"]), "--plain"]) == 0
    assert "WARNING" in capsys.readouterr().err
    assert gzip.decompress(archive.read_bytes())  # plain tar.gz, as asked
    assert run(["backup", "-o", str(tmp_path / "x"), "--site-dir", str(shop["site"]), "--plain",
                "--recipient", "age1qqqq"]) == 2


@pytest.mark.parametrize("bad", ["age1notakey", "ssh-ed25519 AAAAnope", "hello"])
def test_a_bad_recipient_is_refused_before_anything_is_written(shop: dict, tmp_path: Path, bad: str, capsys) -> None:
    archive = tmp_path / "never"
    assert run(["backup", "-o", str(archive), "--site-dir", str(shop["site"]), "--recipient", bad]) == 2
    assert "is not an age recipient" in capsys.readouterr().err
    assert not archive.exists() and shop["client"].api.commands == []


def test_an_identity_others_can_read_is_refused(shop: dict, tmp_path: Path, capsys) -> None:
    identity = tmp_path / "loose.key"
    assert run(["backup-key", "--identity", str(identity)]) == 0
    identity.chmod(0o644)
    assert run(["backup", "-o", str(tmp_path / "b"), "--site-dir", str(shop["site"]), "--identity", str(identity)]) == 2
    assert "readable by others" in capsys.readouterr().err


def test_backup_key_never_overwrites_and_prints_the_same_recipient(tmp_path: Path, capsys) -> None:
    identity = tmp_path / "id.key"
    assert run(["backup-key", "--identity", str(identity)]) == 0
    first = capsys.readouterr().out.strip()
    before = identity.read_bytes()
    assert run(["backup-key", "--identity", str(identity)]) == 0
    assert capsys.readouterr().out.strip() == first and identity.read_bytes() == before

"""Offline bundles: save → load restores the images; any changed byte is refused."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from kitcore.errors import InvalidInput
from kitctl.images.bundle import MANIFEST, load_bundle, save_bundle, verify_bundle

BUNDLE_VERSION = "0.0.0-bundletest"


# ---------------------------------------------------------------- no engine needed
def _write_bundle(path: Path, members: dict[str, bytes], manifest: dict | bytes | None) -> Path:
    with tarfile.open(path, "w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        if manifest is not None:
            raw = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size = len(raw)
            archive.addfile(info, io.BytesIO(raw))
    return path


def _manifest(data: bytes, **override) -> dict:
    entry = {"service": "db", "tag": "kitctl/db:1.0", "file": "images/db.tar", "size": len(data),
             "sha256": hashlib.sha256(data).hexdigest()}
    entry.update(override)
    return {"format": "kitctl-bundle/1", "version": "1.0", "images": [entry]}


def test_a_consistent_bundle_verifies(tmp_path) -> None:
    data = b"layer bytes" * 100
    entries = verify_bundle(_write_bundle(tmp_path / "b.tar", {"images/db.tar": data}, _manifest(data)))
    assert [e.tag for e in entries] == ["kitctl/db:1.0"]


@pytest.mark.parametrize(
    ("members", "manifest", "reason"),
    [
        ({"images/db.tar": b"x"}, None, "no manifest.json"),
        ({"images/db.tar": b"x"}, b"{not json", "malformed manifest.json"),
        ({"images/db.tar": b"y"}, _manifest(b"x"), "checksum mismatch"),
        ({"images/db.tar": b"xx"}, _manifest(b"x"), "has 2 bytes"),
        ({}, _manifest(b"x"), "images/db.tar is missing"),
        ({"images/db.tar": b"x", "../evil": b"x"}, _manifest(b"x"), "unexpected member"),
        ({"images/db.tar": b"x"}, _manifest(b"x", file="../db.tar"), "bad image entry"),
        ({"images/db.tar": b"x"}, _manifest(b"x", tag="evil/db:1.0"), "does not match version"),
        ({"images/db.tar": b"x"}, {"format": "other/9", "images": []}, "unknown format"),
    ],
)
def test_an_inconsistent_bundle_is_refused_in_one_line(tmp_path, members, manifest, reason) -> None:
    path = _write_bundle(tmp_path / "b.tar", members, manifest)
    with pytest.raises(InvalidInput, match=reason) as refused:
        verify_bundle(path)
    assert "\n" not in str(refused.value)


def test_not_a_tar_is_refused(tmp_path) -> None:
    path = tmp_path / "b.tar"
    path.write_bytes(b"\x00garbage" * 1000)
    with pytest.raises(InvalidInput, match="refused"):
        verify_bundle(path)


# ---------------------------------------------------------------- real engine
@pytest.fixture()
def bundle_image(built_images, docker_engine):
    """The proxy image under a throwaway version tag (the real tags stay untouched)."""
    tag = f"kitctl/proxy:{BUNDLE_VERSION}"
    docker_engine.api.tag(built_images["proxy"].tag, "kitctl/proxy", BUNDLE_VERSION)
    yield tag
    try:
        docker_engine.api.remove_image(tag)
    except Exception:
        pass


@pytest.mark.e2e
@pytest.mark.slow
def test_save_then_load_restores_the_image(bundle_image, docker_engine, tmp_path) -> None:
    original = docker_engine.images.get(bundle_image).id
    path = tmp_path / "kit.bundle"
    entries = save_bundle(docker_engine, path, BUNDLE_VERSION, ["proxy"])
    assert [e.tag for e in entries] == [bundle_image]
    docker_engine.api.remove_image(bundle_image)
    assert load_bundle(path, docker_engine) == [bundle_image]
    assert docker_engine.images.get(bundle_image).id == original


@pytest.mark.e2e
@pytest.mark.slow
def test_one_changed_byte_is_refused_and_nothing_loads(bundle_image, docker_engine, tmp_path) -> None:
    import docker.errors

    path = tmp_path / "kit.bundle"
    save_bundle(docker_engine, path, BUNDLE_VERSION, ["proxy"])
    with tarfile.open(path) as archive:
        member = archive.getmember("images/proxy.tar")
        offset = member.offset_data + member.size // 2
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x01]))
    docker_engine.api.remove_image(bundle_image)
    with pytest.raises(InvalidInput, match="checksum mismatch for images/proxy.tar"):
        load_bundle(path, docker_engine)
    with pytest.raises(docker.errors.ImageNotFound):
        docker_engine.images.get(bundle_image)


@pytest.mark.e2e
@pytest.mark.slow
def test_cli_bundle_save_and_refusal(bundle_image, tmp_path, capsys) -> None:
    from kitctl.cli import run

    path = tmp_path / "kit.bundle"
    assert run(["bundle", "save", "-o", str(path), "--version", BUNDLE_VERSION, "--service", "proxy", "--json"]) == 0
    saved = json.loads(capsys.readouterr().out)
    assert saved["images"][0]["tag"] == bundle_image
    with open(path, "r+b") as f:  # break the manifest's JSON
        data = f.read()
        at = data.rindex(b'"format"')
        f.seek(at)
        f.write(b"X")
    assert run(["bundle", "load", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: bundle kit.bundle refused") and "\n" not in err
    assert run(["bundle", "save", "-o", str(tmp_path / "no" / "dir.bundle"), "--service", "proxy"]) == 2


def test_the_manifest_carries_the_plugin_wheels_of_an_image_and_an_older_manifest_still_verifies(tmp_path) -> None:
    data = b"image bytes"
    record = [{"file": "kitctl_points-0.1.0-py3-none-any.whl", "plugins": [{"name": "points"}]}]
    with_plugins = _write_bundle(tmp_path / "new.tar", {"images/db.tar": data}, _manifest(data, plugins=record))
    assert [e.plugins for e in verify_bundle(with_plugins)] == [record]
    older = _write_bundle(tmp_path / "old.tar", {"images/db.tar": data}, _manifest(data))
    assert [e.plugins for e in verify_bundle(older)] == [[]]

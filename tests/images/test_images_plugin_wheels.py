"""Third-party plugin wheels for `kitctl images build --plugin-wheel` (issue 28, case 7): checked before Docker."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from kitcore.errors import InvalidInput
from kitctl.images.checkout import assemble_context
from kitctl.images.plugin_wheels import checked_wheels, label_value
from tests.plugins.scaffolded import scaffolded_wheel
from tests.support.cli import kitctl

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    return scaffolded_wheel(tmp_path_factory.mktemp("plugin"))


def test_a_scaffolded_wheel_is_accepted_with_what_its_manifest_says(wheel: Path) -> None:
    (accepted,) = checked_wheels([wheel.parent], ROOT)
    assert accepted.distribution == "kitctl_loyalty_points" and accepted.version == "0.1.0"
    assert accepted.plugins == ({"name": "loyalty-points", "version": "0.1.0", "feature": "loyalty-points",
                                 "api_version": 2},)
    (record,) = json.loads(label_value([accepted]))
    assert record["file"] == wheel.name and len(record["sha256"]) == 64 and "path" not in record


def _wheel_without_entry_points(folder: Path) -> Path:
    path = folder / "plain-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("plain/__init__.py", "")
        archive.writestr("plain-1.0.dist-info/METADATA", "Name: plain\nVersion: 1.0\n")
    return path


@pytest.mark.parametrize("case", ["missing", "text", "empty-folder", "no-entry-point", "not-a-zip"])
def test_what_is_not_a_plugin_wheel_is_refused_in_one_line(tmp_path: Path, case: str) -> None:
    path = {"missing": lambda: tmp_path / "gone.whl",
            "text": lambda: _write(tmp_path / "notes.txt", "hi"),
            "empty-folder": lambda: _mkdir(tmp_path / "wheels"),
            "no-entry-point": lambda: _wheel_without_entry_points(tmp_path),
            "not-a-zip": lambda: _write(tmp_path / "broken-1.0-py3-none-any.whl", "not a zip")}[case]()
    reason = {"missing": "does not exist", "text": "is not a .whl file", "empty-folder": "holds no .whl file",
              "no-entry-point": "registers no `kitctl.plugins` entry point", "not-a-zip": "is unreadable"}[case]
    with pytest.raises(InvalidInput, match=reason):
        checked_wheels([path], ROOT)


def test_a_plugin_targeting_an_api_this_kit_does_not_offer_is_refused(tmp_path: Path) -> None:
    future = scaffolded_wheel(tmp_path, edit=("api_version=2,", "api_version=3,"))
    with pytest.raises(InvalidInput, match="plugin loyalty-points: targets plugin API 3; this kit offers 1, 2"):
        checked_wheels([future], ROOT)


def test_two_wheels_registering_one_plugin_name_are_refused(wheel: Path, tmp_path: Path) -> None:
    copy = tmp_path / wheel.name.replace("0.1.0", "0.1.1")
    copy.write_bytes(wheel.read_bytes())
    with pytest.raises(InvalidInput, match="plugin 'loyalty-points' is registered by both"):
        checked_wheels([wheel, copy], ROOT)


def test_the_cli_refuses_a_missing_wheel_before_asking_docker(tmp_path: Path) -> None:
    done = kitctl("images", "build", "--service", "agent", "--plugin-wheel", str(tmp_path / "gone.whl"),
                  "--docker-host", f"unix://{tmp_path}/no.sock", check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [f"error: plugin wheel {tmp_path / 'gone.whl'} does not exist"]


def test_plugin_wheels_go_into_the_storefront_and_agent_contexts_only(wheel: Path, tmp_path: Path) -> None:
    kit = _mkdir(tmp_path / "kit-wheels")
    for service in ("storefront", "agent", "hq"):
        plugins = [wheel] if service != "hq" else []
        ctx = assemble_context(ROOT, service, kit, tmp_path / "contexts", plugins)
        assert sorted(p.name for p in (ctx / "wheels" / "plugins").iterdir()) == [p.name for p in plugins]
    dockerfile = (ROOT / "images" / "python" / "Dockerfile").read_text()
    assert "FROM kit-plugins AS storefront" in dockerfile and "FROM kit-plugins AS agent" in dockerfile
    assert "FROM kit-python AS hq" in dockerfile


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir()
    return path

"""`kitctl render` with nothing changed is answered from a stamp (kitctl.render.unchanged), and only then.

Each test renders once through the full CLI, then runs the same command again
through the stamp path with a `full` that records whether it was needed: any
changed input, template, kit version, licence or key must reach the full render.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from kitctl.cli import run
from kitctl.render import unchanged
from tests.render.conftest import PNG_1X1
from tests.render.test_cli import argv

ROOT = Path(__file__).resolve().parents[2]


class Kitctl:
    """`kitctl ARGS` as the console script runs it; `full` counts how often the full CLI was needed."""

    def __init__(self) -> None:
        self.full = 0

    def __call__(self, args: list[str]) -> int:
        def full(a: list[str]) -> int:
            self.full += 1
            return run(a)

        return unchanged.render(args, full)


@pytest.fixture
def site_flags(flags: dict[str, Any], make_licence: Callable[..., Path], hq_keys_file: Path,
               tmp_path: Path) -> dict[str, Any]:
    """The render flags with a licence and a pinned keys file of this test's own (tests change them)."""
    licence, keys = tmp_path / "licence.jwt", tmp_path / "hq-keys.json"
    shutil.copy(make_licence("pro", ("game", "phone")), licence)
    shutil.copy(hq_keys_file, keys)
    return {**flags, "licence": f"@{licence}", "hq_keys": str(keys)}


@pytest.fixture
def kitctl(site_flags: dict[str, Any]) -> Kitctl:
    """A site rendered (and stamped by that render)."""
    k = Kitctl()
    assert k(["render", *argv(site_flags)]) == 0
    k.full = 0
    return k


def test_unchanged_render_is_answered_from_the_stamp_as_the_full_render_answers(kitctl, site_flags, capsys):
    capsys.readouterr()
    for extra in ([], ["--json"]):
        assert run(["render", *extra, *argv(site_flags)]) == 0
        full_out = capsys.readouterr().out
        assert kitctl(["render", *extra, *argv(site_flags)]) == 0
        assert capsys.readouterr().out == full_out
    assert kitctl.full == 0
    assert json.loads(full_out)["changed"] is False


def test_the_render_after_a_change_is_answered(kitctl, site_flags, capsys):
    assert kitctl(["render", *argv(site_flags, primary_color="#FF0000")]) == 0 and kitctl.full == 1
    assert kitctl(["render", *argv(site_flags, primary_color="#FF0000")]) == 0 and kitctl.full == 1
    assert capsys.readouterr().out.splitlines()[-2].startswith("unchanged ")


def test_days_left_are_counted_at_the_time_of_asking(kitctl, site_flags, capsys, monkeypatch):
    later = time.time() + 10 * 86400
    monkeypatch.setattr(time, "time", lambda: later)
    capsys.readouterr()
    assert kitctl(["render", *argv(site_flags)]) == 0 and kitctl.full == 0
    assert "354 days left" in capsys.readouterr().out


def _edit_licence(flags: dict[str, Any], make_licence: Callable[..., Path]) -> None:
    Path(flags["licence"][1:]).write_bytes(make_licence("pro", ("game", "phone")).read_bytes())


def _edit_keys(flags: dict[str, Any], make_licence: Callable[..., Path]) -> None:
    path = Path(flags["hq_keys"])
    path.write_text(json.dumps(json.loads(path.read_text()), indent=1))  # same keys, other bytes


def _edit_logo(flags: dict[str, Any], make_licence: Callable[..., Path]) -> None:
    Path(flags["logo"]).write_bytes(PNG_1X1 + b"\0")


def _edit_rendered_file(flags: dict[str, Any], make_licence: Callable[..., Path]) -> None:
    compose = Path(flags["site_dir"]) / "compose.yaml"
    compose.write_text(compose.read_text() + "# edited\n")


def _drop_secret(flags: dict[str, Any], make_licence: Callable[..., Path]) -> None:
    secret = next(p for p in (Path(flags["site_dir"]) / "secrets").iterdir() if p.is_file() and p.name != "licence_token")
    secret.unlink()


def _add_site_toml(flags: dict[str, Any], make_licence: Callable[..., Path]) -> None:
    (Path(flags["site_dir"]) / "site.toml").write_text('primary_colour = "#123456"\n')


def _stored_licence(flags: dict[str, Any], make_licence: Callable[..., Path]) -> None:
    stored = Path(flags["site_dir"]) / "secrets" / "licence_token"
    stored.write_bytes(make_licence("pro", ("game", "phone")).read_bytes())  # as `kitctl up` stores HQ's newer one


@pytest.mark.parametrize("change", [_edit_licence, _edit_keys, _edit_logo, _edit_rendered_file, _drop_secret,
                                    _add_site_toml, _stored_licence])
def test_a_changed_file_renders_for_real(kitctl, site_flags, make_licence, change):
    change(site_flags, make_licence)
    assert kitctl(["render", *argv(site_flags)]) == 0
    assert kitctl.full == 1


def test_a_changed_argument_or_environment_renders_for_real(kitctl, site_flags, monkeypatch, capsys):
    assert kitctl(["render", *argv(site_flags, primary_color="#FF0000")]) == 0
    assert kitctl.full == 1 and "rendered" in capsys.readouterr().out
    monkeypatch.setenv("KITCTL_LOCALE", "en")
    assert kitctl(["render", *argv(site_flags)]) == 0
    assert kitctl.full == 2 and "rendered" in capsys.readouterr().out
    monkeypatch.chdir(site_flags["site_dir"])  # relative paths would mean other files
    assert kitctl(["render", *argv(site_flags)]) == 0
    assert kitctl.full == 3


def test_another_kit_version_or_template_renders_for_real(kitctl, site_flags, monkeypatch, tmp_path):
    monkeypatch.setattr(unchanged, "__version__", "9.9.9")
    assert kitctl(["render", *argv(site_flags)]) == 0 and kitctl.full == 1
    template = tmp_path / "templates" / "compose" / "x.j2"
    template.parent.mkdir(parents=True)
    template.write_text("a")
    monkeypatch.setattr(unchanged, "code_roots", lambda: [tmp_path / "templates"])
    assert kitctl(["render", *argv(site_flags)]) == 0 and kitctl.full == 2
    assert kitctl(["render", *argv(site_flags)]) == 0 and kitctl.full == 2  # stamped with this template
    template.write_text("b")
    assert kitctl(["render", *argv(site_flags)]) == 0 and kitctl.full == 3


def test_the_kit_templates_and_rules_are_in_the_stamp():
    from kitctl.render.compose_templates import templates_dir
    from kitctl.render.monitoring import rules_file

    roots = unchanged.code_roots()
    for path in (templates_dir(), rules_file(), Path(unchanged.__file__).resolve()):
        assert any(root in path.parents for root in roots), path


def test_an_expired_licence_is_refused_not_answered(kitctl, site_flags, monkeypatch, capsys):
    from kitcore.licence.token import GRACE_SECONDS

    beyond = time.time() + 366 * 86400 + GRACE_SECONDS
    monkeypatch.setattr(time, "time", lambda: beyond)
    assert kitctl(["render", *argv(site_flags)]) == 2
    assert kitctl.full == 1 and "expired" in capsys.readouterr().err


def test_a_clock_set_back_before_the_render_renders_for_real(kitctl, site_flags, monkeypatch):
    earlier = time.time() - 3600
    monkeypatch.setattr(time, "time", lambda: earlier)
    kitctl(["render", *argv(site_flags)])
    assert kitctl.full == 1


def test_a_licence_in_grace_is_never_stamped(kitctl, site_flags, monkeypatch, capsys):
    in_grace = time.time() + 366 * 86400
    monkeypatch.setattr(time, "time", lambda: in_grace)
    for _ in range(2):
        assert kitctl(["render", *argv(site_flags)]) == 0
    assert kitctl.full == 2 and "grace" in capsys.readouterr().out


def test_stdin_and_an_interrupted_swap_go_to_the_full_render(kitctl, site_flags, monkeypatch):
    site = Path(site_flags["site_dir"])
    (site.parent / f".{site.name}.old-x").mkdir()
    assert kitctl(["render", *argv(site_flags)]) == 0 and kitctl.full == 1
    assert unchanged.answer(["render", *argv(site_flags, licence="-")]) is None


def test_the_answer_imports_no_framework(kitctl, site_flags):
    code = ("import sys; from kitctl import entry; sys.argv = ['kitctl', *sys.argv[1:]]\n"
            "try:\n    entry.main()\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
            "heavy = [m for m in ('typer', 'rich', 'pydantic', 'pydantic_settings', 'jinja2', 'cryptography', 'jwt')"
            " if m in sys.modules]\nprint('heavy', heavy)")
    for _ in range(2):  # the first stamps (its interpreter's paths are in the digest), the second is answered
        proc = subprocess.run([sys.executable, "-c", code, "render", *argv(site_flags)], capture_output=True,
                              text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
        assert proc.returncode == 0, proc.stderr
    assert "unchanged" in proc.stdout and "heavy []" in proc.stdout


def test_images_rebuilt_under_the_same_tag_with_a_plugin_render_again(site_flags, monkeypatch):
    """`kitctl images build --plugin-wheel` keeps the tag: the stamp answered "unchanged" and kitctl.lock
    never recorded the plugin the new images carry."""
    from kitctl.images.plugin_wheels import label_value
    from kitctl.render import image_plugins
    from kitcore.sitedir import SiteDir
    from tests.render.test_image_plugins import WHEEL

    engine = {"id": "sha256:plain", "label": "[]"}
    monkeypatch.setattr(image_plugins, "inspected", lambda host, refs: {
        r: {"Id": engine["id"], "Config": {"Labels": {image_plugins.PLUGINS_LABEL: engine["label"]}}}
        for r in refs if r.startswith("kitctl/")})
    k = Kitctl()
    assert k(["render", *argv(site_flags)]) == 0
    assert k(["render", *argv(site_flags)]) == 0 and k.full == 1  # answered from the stamp
    engine.update(id="sha256:with-plugin", label=label_value([WHEEL]))
    assert k(["render", *argv(site_flags)]) == 0 and k.full == 2
    lock = json.loads(SiteDir(Path(site_flags["site_dir"])).lock_file.read_text())
    assert [p["name"] for p in lock["images"]["plugins"]] == ["loyalty-points"]

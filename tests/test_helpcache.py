"""`kitctl … --help` from the help cache: the same text the CLI draws, without loading typer, redrawn on any change."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kitctl import helpcache

ROOT = Path(__file__).resolve().parents[1]
PROBE = ("import sys\nfrom kitctl.entry import main\nsys.argv = ['kitctl', *sys.argv[1:]]\n"
         "try:\n    main()\nfinally:\n    print('typer loaded' if 'typer' in sys.modules else 'typer not loaded', file=sys.stderr)\n")


def _kitctl(cache: Path, *args: str, columns: str = "100") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "COLUMNS": columns, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=120)


@pytest.mark.parametrize("args", [["--help"], ["up", "--help"], ["hq", "licence", "issue", "--help"]])
def test_the_second_help_is_the_first_one_without_typer(tmp_path, args):
    first, second = _kitctl(tmp_path, *args), _kitctl(tmp_path, *args)
    assert first.returncode == second.returncode == 0
    assert "Usage: kitctl" in first.stdout and second.stdout == first.stdout
    assert "typer loaded" in first.stderr and "typer not loaded" in second.stderr


def test_another_width_is_drawn_afresh_and_a_failure_is_not_kept(tmp_path):
    wide = _kitctl(tmp_path, "up", "--help", columns="140")
    narrow = _kitctl(tmp_path, "up", "--help", columns="70")
    assert "typer loaded" in narrow.stderr and wide.stdout != narrow.stdout
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 70
    for _ in range(2):
        failed = _kitctl(tmp_path, "nosuch", "--help")
        assert failed.returncode == 2 and "typer loaded" in failed.stderr


def test_an_edited_module_changes_the_key(tmp_path, monkeypatch):
    package = tmp_path / "helpcache_probe_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    module = package / "cli.py"
    module.write_text("HELP = 'old'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(helpcache, "PACKAGES", (*helpcache.PACKAGES, package.name))
    before = helpcache.key(["--help"])
    assert helpcache.key(["--help"]) == before
    module.write_text("HELP = 'new, longer'\n")
    assert helpcache.key(["--help"]) != before


@pytest.mark.parametrize("args, expected", [
    (["--help"], True), (["up", "--help"], True), (["hq", "licence", "issue", "--help"], True),
    (["up"], False), (["up", "--site-dir", "x", "--help"], False), (["--help", "up"], False), ([], False),
])
def test_only_a_bare_help_request_is_cached(args, expected):
    assert helpcache.is_help(args) is expected


def test_the_command_table_names_every_command_the_modules_register():
    from kitctl.cli import COMMANDS, build

    app, _, _ = build(["--help"])
    names = {c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands}
    names |= {g.name for g in app.registered_groups}
    assert names == set(COMMANDS)

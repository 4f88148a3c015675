"""`kitctl service install`: one systemd unit per site that systemd itself accepts, or one clear line and nothing
written."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from kitctl.cli import run
from kitctl.service.unit import UnitSpec, render, verify
from tests.conftest import require
from tests.service.test_host_service import Rig


def test_the_unit_systemd_analyze_accepts_runs_this_kitctl_for_the_site(tmp_path: Path, monkeypatch, capsys) -> None:
    rig = Rig(tmp_path, monkeypatch)
    units = tmp_path / "units"
    units.mkdir()
    assert run(["service", "install", "--site-dir", str(rig.site_dir), "--unit-dir", str(units), "--interval", "2",
                "--hq-url", "http://127.0.0.1:8600", "--docker-host", "unix:///var/run/docker.sock"]) == 0
    unit = units / "kitctl-kit-xingchen.service"
    text = unit.read_text()
    assert (unit.stat().st_mode & 0o777) == 0o644 and "Restart=always" in text
    exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    assert exec_start == (f'ExecStart="{sys.executable}" "-m" "kitctl" "service" "run" "--site-dir" '
                          f'"{rig.site_dir.resolve()}" "--interval" "2" "--docker-host" '
                          f'"unix:///var/run/docker.sock" "--hq-url" "http://127.0.0.1:8600"')
    assert "systemctl enable --now kitctl-kit-xingchen.service" in capsys.readouterr().out
    require(shutil.which("systemd-analyze") is not None, "systemd-analyze is not installed")
    assert verify(unit) == ""


def test_the_window_and_the_opt_out_go_into_the_unit_the_licensee_installs(tmp_path: Path, monkeypatch) -> None:
    rig = Rig(tmp_path, monkeypatch)
    units = tmp_path / "units"
    units.mkdir()
    assert run(["service", "install", "--site-dir", str(rig.site_dir), "--unit-dir", str(units),
                "--window", "23:30-01:15", "--timezone", "Asia/Shanghai", "--no-auto-upgrade"]) == 0
    exec_start = next(line for line in (units / "kitctl-kit-xingchen.service").read_text().splitlines()
                      if line.startswith("ExecStart="))
    assert exec_start.endswith('"--window" "23:30-01:15" "--timezone" "Asia/Shanghai" "--no-auto-upgrade"')


def test_systemd_specials_in_a_path_are_escaped(tmp_path: Path) -> None:
    spec = UnitSpec("kit-x", tmp_path / "100%$HOME", ["/usr/bin/python3", "-m", "kitctl"])
    assert '100%%$$HOME"' in render(spec)


@pytest.mark.parametrize("args, said", [
    (["--hq-url", "ftp://hq"], "--hq-url"), (["--hq-url", "http://hq/ x"], "--hq-url"),
    (["--interval", "0"], "--interval"), (["--unit-dir", "/nonexistent-dir-kitctl"], "not a directory"),
    (["--window", "2-5"], "HH:MM-HH:MM"), (["--window", "24:00-05:00"], "HH:MM-HH:MM"),
    (["--window", "02:00-02:00"], "the same"), (["--window", "02:00-05:00", "--timezone", "Mars/Olympus"],
                                                 "not known"),
    (["--window", "02:00-05:00", "--timezone", "../etc"], "not a time zone"), (["--timezone", "UTC+8"], "--window"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, monkeypatch, capsys, args, said) -> None:
    rig = Rig(tmp_path, monkeypatch)
    units = tmp_path / "units"
    units.mkdir()
    full = ["service", "install", "--site-dir", str(rig.site_dir), *args]
    if "--unit-dir" not in args:
        full += ["--unit-dir", str(units)]
    assert run(full) == 2
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert list(units.iterdir()) == []


def test_no_site_no_unit(tmp_path: Path, capsys) -> None:
    assert run(["service", "install", "--site-dir", str(tmp_path / "none"), "--unit-dir", str(tmp_path)]) == 2
    assert "no compose.yaml" in capsys.readouterr().err


def test_verify_says_what_systemd_refuses(tmp_path: Path) -> None:
    require(shutil.which("systemd-analyze") is not None, "systemd-analyze is not installed")
    unit = tmp_path / "kitctl-kit-x.service"
    unit.write_text(render(UnitSpec("kit-x", tmp_path, ["/nonexistent/python3", "-m", "kitctl"])))  # no such program
    assert "/nonexistent/python3" in verify(unit)

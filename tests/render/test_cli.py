"""`kitctl render` / `kitctl plan` as a person runs them: exit codes, one-line errors, no secrets shown."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kitctl.cli import run

ROOT = Path(__file__).resolve().parents[2]


def argv(flags: dict, **over) -> list[str]:
    merged = {**flags, **over}
    args = []
    for key, value in merged.items():
        if value is None:
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, list):
            repeated = {"plugins": "--plugin", "categories": "--category"}[key]
            for item in value:
                args += [repeated, item]
        else:
            args += [flag, str(value)]
    return args


def test_render_then_plan_through_the_cli(flags, capsys):
    assert run(["render", *argv(flags)]) == 0
    out = capsys.readouterr().out
    assert "rendered" in out and "xingchen" in out
    secrets = Path(flags["site_dir"]) / "secrets"
    for secret in secrets.iterdir():
        if secret.name != "licence_token":
            assert secret.read_text() not in out
    assert run(["plan", "--diff", *argv(flags, primary_color="#FF0000")]) == 0
    out = capsys.readouterr().out
    assert "+  --kit-primary: #FF0000;" in out and "recreate" in out
    assert run(["plan", "--json", *argv(flags)]) == 0
    assert json.loads(capsys.readouterr().out)["changed"] is False


def test_render_json_summary_has_no_secret(flags, capsys):
    assert run(["render", "--json", *argv(flags)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["site_id"] == "xingchen" and summary["changed"] is True
    blob = json.dumps(summary)
    for secret in (Path(flags["site_dir"]) / "secrets").iterdir():
        assert secret.read_text() not in blob


@pytest.mark.parametrize(
    "over, words",
    [
        ({"primary_color": "blue"}, "invalid --primary-color"),
        ({"name": "two\nlines"}, "invalid --name"),
        ({"domain": "bad domain"}, "invalid --domain"),
        ({"licence": "not-a-token"}, "licence rejected"),
        ({"licence": "@/nonexistent/licence"}, "cannot read licence file"),
        ({"plugins": ["regional-pricing"]}, "tier flagship or higher"),
        ({"plugins": ["custom-plugins"]}, "unknown plugin 'custom-plugins'"),
        ({"logo": "/nonexistent.png"}, "cannot read logo"),
        ({"hq_keys": "/nonexistent.json"}, "does not exist"),
        ({"locale": "de"}, "invalid --locale"),
        ({"checkouts_per_minute": "0"}, "invalid --checkouts-per-minute"),
        ({"checkouts_per_minute": "100001"}, "invalid --checkouts-per-minute"),
    ],
)
def test_bad_input_exits_2_with_one_line(flags, capsys, over, words):
    assert run(["render", *argv(flags, **over)]) == 2
    captured = capsys.readouterr()
    lines = [l for l in captured.err.splitlines() if l.strip()]
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ") and words in lines[0]
    assert "Traceback" not in captured.err
    assert not Path(flags["site_dir"]).exists()


def test_whole_process_exit_code_and_stderr(flags):
    """The real entry point in a child process: exit 2, one line, nothing written."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "kitctl", "render", *argv(flags, accent_color="#GGGGGG")],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "invalid --accent-color" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "kitctl", "render", *argv(flags)], capture_output=True, text=True,
                          env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert (Path(flags["site_dir"]) / "compose.yaml").is_file()


def test_kitctl_import_stays_light():
    """`import kitctl.cli` must not pull in jinja2, yaml, pydantic_settings or the renderer."""
    code = ("import sys, kitctl.cli; heavy = [m for m in ('jinja2', 'yaml', 'pydantic_settings', 'kitctl.render.api',"
            " 'idna') if m in sys.modules]; print(heavy)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr


@pytest.mark.parametrize("argv, words", [
    (["licence", "inspect", "-0"], "No such option: -0 (see 'kitctl licence inspect --help')"),
    (["up", "--http-port", "abc"], "Invalid value for '--http-port'"),
    (["nosuch"], "No such command 'nosuch'"),
    (["render"], ""),  # whatever the missing input, one line
])
def test_usage_errors_are_one_line_with_exit_code_2(capsys, argv, words):
    """Click's usage errors (unknown option, bad value, unknown command) are refusals like any other."""
    code = run(argv)
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2 and captured.out == "" and len(lines) == 1, captured.err
    assert lines[0].startswith("error: ") and words in lines[0]

"""The framework-free no-op check of `kitctl up`: when it must defer to the full path.

That it answers "nothing to do" on a running stack, and agrees with the full
path, is shown on the real engine in tests/e2e/test_up.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kitctl.deploy.engine_socket import EngineError, EngineSocket
from kitctl.deploy.noop import unchanged_stack
from kitctl.entry import parse_fast_up_options
from kitcore.sitedir import SiteDir


@pytest.mark.parametrize("args, expected", [
    ([], {}),
    (["--site-dir", "s"], {"site_dir": "s"}),
    (["--site-dir=s", "--docker-host", "unix:///x.sock"], {"site_dir": "s", "docker_host": "unix:///x.sock"}),
])
def test_fast_up_understands_only_the_deploy_only_options(args: list[str], expected: dict[str, str]) -> None:
    assert parse_fast_up_options(args) == expected


@pytest.mark.parametrize("args", [
    ["--name", "Shop"], ["--site-dir"], ["--site-dir", "--dry-run"], ["--dry-run"], ["--site-dir", "a", "--site-dir", "b"],
    ["--licence", "@t"], ["--bundle", "b.tar"], ["--timeout", "5"], ["--site-dir="], ["extra"],
])
def test_any_other_argument_goes_to_the_full_cli(args: list[str]) -> None:
    assert parse_fast_up_options(args) is None


def _site(tmp_path: Path) -> Path:
    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    image: kitctl/web:1\n")
    return tmp_path


def test_remote_targets_and_sites_to_render_defer(tmp_path: Path) -> None:
    site = _site(tmp_path)
    assert unchanged_stack(site, "ssh://root@127.0.0.1:2222") is None
    SiteDir(site).site_toml.write_text("name = 'x'\n")
    assert unchanged_stack(site, None) is None
    assert unchanged_stack(tmp_path / "missing", None) is None


def test_a_licence_never_verified_defers(tmp_path: Path) -> None:
    """No cached verification: the full path verifies (and reports) the licence."""
    assert unchanged_stack(_site(tmp_path), "unix:///nonexistent/docker.sock") is None


def test_an_absent_engine_is_an_engine_error(tmp_path: Path) -> None:
    with EngineSocket(f"unix://{tmp_path}/docker.sock", timeout=1) as engine:
        with pytest.raises(EngineError):
            engine.containers({})
    with pytest.raises(EngineError):
        EngineSocket("ssh://root@127.0.0.1")


def test_plain_up_leaves_sites_to_render_to_the_full_cli(tmp_path: Path) -> None:
    from kitctl.entry import plain_up

    assert plain_up(["--site-dir", str(tmp_path)]) is None  # nothing rendered yet
    site = _site(tmp_path)
    SiteDir(site).site_toml.write_text("name = 'x'\n")
    assert plain_up(["--site-dir", str(site)]) is None
    assert plain_up(["--site-dir", str(site), "--name", "Shop"]) is None


def test_plain_up_refuses_a_bad_engine_address_in_one_line(tmp_path: Path, capsys) -> None:
    from kitctl.entry import plain_up

    site = _site(tmp_path)
    assert plain_up(["--site-dir", str(site), "--docker-host", "ftp://engine.invalid"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --docker-host 'ftp://engine.invalid' must be") and "\n" not in err
    assert sorted(p.name for p in site.iterdir()) == ["compose.yaml"]


def test_a_hand_written_stack_has_no_plugin_drift_and_no_query(tmp_path: Path) -> None:
    """Plugin services come from a render; without kitctl.lock nothing is checked, the engine is not even asked."""
    from kitctl.deploy.compose import parse_project
    from kitctl.deploy.drift import refresh_before_up, rendered_by_kitctl, token_query

    site = _site(tmp_path)
    assert not rendered_by_kitctl(site)
    assert refresh_before_up(site, "unix:///nonexistent/docker.sock", None) is None
    stack = {"services": {"db": {"image": "kitctl/db:1"}, "web": {"image": "kitctl/web:1"}}}
    assert token_query(parse_project(stack, tmp_path, tmp_path / "compose.yaml", "shop")) is None  # no agent: no writer
    stack["services"]["agent"] = {"image": "kitctl/agent:1"}
    assert token_query(parse_project(stack, tmp_path, tmp_path / "compose.yaml", "shop"))[0] == "psql"

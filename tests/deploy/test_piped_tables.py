"""Tables never cut a cell when stdout is not a terminal (issue 23, item 5): `kitctl status | grep` sees
every image name and port in full."""

from __future__ import annotations

from pathlib import Path
import pytest
from typer.testing import CliRunner

from kitctl.cli import build
from kitctl.deploy.drift import PluginDrift
from kitctl.deploy.operate import ServiceStatus

LONG_IMAGE = "registry.example.test:5000/licensee-with-a-long-name/kitctl/storefront:0.1.0-build.20261206.abcdef123456"
PORTS = ["127.0.0.1:18080->80/tcp", "127.0.0.1:18443->443/tcp", "[::1]:18080->80/tcp", "[::1]:18443->443/tcp"]


@pytest.fixture()
def fake_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The engine's answers for one long-named service; everything else of `status` runs as shipped."""
    import kitctl.cli.deploy as cli_deploy
    import kitctl.deploy.drift as drift
    import kitctl.deploy.operate as operate
    import kitctl.engine as engine

    (tmp_path / "compose.yaml").write_text(f"services:\n  storefront:\n    image: {LONG_IMAGE}\n")
    row = ServiceStatus("storefront", "shop-storefront-1", LONG_IMAGE, "running", "healthy", 3600, PORTS)
    monkeypatch.setattr(engine, "connect", lambda host=None: object())
    monkeypatch.setattr(operate, "status", lambda client, project: [row])
    monkeypatch.setattr(operate, "licence_state", lambda client, project: None)
    monkeypatch.setattr(drift, "plugin_drift", lambda client, project, site_dir: _no_drift())
    monkeypatch.setattr(cli_deploy, "_licence_terms", lambda site_dir, host, client: None)
    monkeypatch.setattr(cli_deploy, "_legacy_line", lambda client, project: None)
    return tmp_path


def _no_drift() -> PluginDrift:
    return PluginDrift(wanted={}, rendered={}, deployed={})


def test_status_piped_keeps_full_image_names_and_ports(fake_engine: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")  # what a pipe looks like to rich: it cut cells at 80 columns
    app, args, _ = build(["status", "--site-dir", str(fake_engine)])
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "storefront" in line and "running" in line)
    assert LONG_IMAGE in row
    assert ", ".join(PORTS) in row

"""The built wheel is the product: it must install alone and carry the templates."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(REPO)],
                   check=True, capture_output=True, timeout=600)
    (built,) = out.glob("kitctl-*.whl")
    return built


def test_wheel_carries_every_package_and_the_templates(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    templates = [n for n in names if n.startswith("kitctl/_templates/compose/")]
    shipped = sorted(p.relative_to(REPO / "templates").as_posix() for p in (REPO / "templates").rglob("*") if p.is_file())
    assert sorted(n.removeprefix("kitctl/_templates/") for n in templates) == shipped
    source_packages = [d.name for d in REPO.iterdir()
                       if (d / "__init__.py").exists() and d.name not in ("tests", "bench", "demo")]
    assert {"kitcore", "kitctl", "sitedb"} <= set(source_packages)
    for package in source_packages:
        assert f"{package}/__init__.py" in names, f"package {package} is missing from the wheel"
    assert any(n.startswith("sitedb/migrations/versions/") for n in names)
    assert "plugins/testing.py" in names  # the plugin authors' test kit (issue 28, case 8)
    monitoring = sorted(p.relative_to(REPO / "monitoring").as_posix() for p in (REPO / "monitoring").rglob("*") if p.is_file())
    assert sorted(n.removeprefix("kitctl/_monitoring/") for n in names if n.startswith("kitctl/_monitoring/")) == monitoring
    assert "prometheus/kitctl-rules.yml" in monitoring and "grafana/kitctl-site.json" in monitoring
    # The demo composes HQ and the CLI from a checkout; a licensee's wheel does not carry it.
    assert not any(n.startswith("demo/") for n in names)


@pytest.mark.slow
def test_wheel_installs_into_an_empty_venv_and_runs(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    pip = env_dir / "bin" / "pip"
    subprocess.run([str(pip), "install", "--quiet", "--disable-pip-version-check", str(wheel)],
                   check=True, timeout=900)
    kitctl = env_dir / "bin" / "kitctl"
    help_run = subprocess.run([str(kitctl), "--help"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert help_run.returncode == 0 and "licence" in help_run.stdout
    probe = subprocess.run(
        [str(env_dir / "bin" / "python"), "-c",
         "from kitctl.render.compose_templates import templates_dir; print(sorted(p.name for p in templates_dir().iterdir()))"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    assert "_templates" in subprocess.run(
        [str(env_dir / "bin" / "python"), "-c", "from kitctl.render.compose_templates import templates_dir; print(templates_dir())"],
        capture_output=True, text=True, cwd=tmp_path).stdout

"""`kitctl plugins new NAME` (issue 28, case 8): a package a third party tests with the kit's test kit alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.plugins.scaffolded import NAME
from tests.support.cli import kitctl


def test_new_scaffolds_a_package_whose_own_tests_pass_with_the_shipped_test_kit(tmp_path: Path) -> None:
    done = kitctl("plugins", "new", NAME, "--dir", str(tmp_path))
    package = tmp_path / f"kitctl-{NAME}"
    assert f"created {package}" in done.stdout
    pyproject = (package / "pyproject.toml").read_text()
    assert '[project.entry-points."kitctl.plugins"]\nloyalty-points = "kitctl_loyalty_points:LoyaltyPointsPlugin"' in pyproject
    module = (package / "kitctl_loyalty_points" / "__init__.py").read_text()
    assert "def page_lines" in module and "def on_order_decided" in module and "points_per_yuan" in module
    assert '"plugin_loyalty_points_credits"' in module
    # the package's tests, run as its author would: from its folder, nothing of the kit's tests/ on the path
    env = {**os.environ, "PYTHONPATH": str(package)}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=package,
                         capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "3 passed" in run.stdout


@pytest.mark.parametrize(("name", "reason"), [
    ("Loyalty", "plugin name 'Loyalty' must be lowercase letters, digits and '-'"),
    ("x", "plugin name 'x' must be lowercase letters"),
    ("points\n", "must be lowercase letters"),
    ("coupons", "plugin name 'coupons' is a built-in plugin's"),
])
def test_new_refuses_a_bad_name_in_one_line_and_writes_nothing(tmp_path: Path, name: str, reason: str) -> None:
    done = kitctl("plugins", "new", name, "--dir", str(tmp_path), check=False)
    assert done.returncode == 2 and reason in done.stderr and "Traceback" not in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_new_refuses_an_existing_folder_and_leaves_it_alone(tmp_path: Path) -> None:
    kitctl("plugins", "new", NAME, "--dir", str(tmp_path))
    module = tmp_path / f"kitctl-{NAME}" / "kitctl_loyalty_points" / "__init__.py"
    module.write_text("# mine\n")
    done = kitctl("plugins", "new", NAME, "--dir", str(tmp_path), check=False)
    assert done.returncode == 2 and "already exists" in done.stderr
    assert module.read_text() == "# mine\n" and [p.name for p in tmp_path.iterdir()] == [f"kitctl-{NAME}"]


def test_new_refuses_a_missing_directory(tmp_path: Path) -> None:
    done = kitctl("plugins", "new", NAME, "--dir", str(tmp_path / "nowhere"), check=False)
    assert done.returncode == 2 and "does not exist" in done.stderr

"""A third party's plugin package for tests: scaffolded by `kitctl plugins new`, built into a wheel outside the repo."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

NAME = "loyalty-points"


def scaffold(parent: Path, name: str = NAME) -> Path:
    from kitctl.plugin_scaffold import new_plugin

    return new_plugin(name, parent)


def build_wheel(package: Path, dest: Path) -> Path:
    """The package's wheel (hatchling from the kit's own environment: no index, no build isolation)."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index", "--no-build-isolation",
                    "--wheel-dir", str(dest), f"./{package.name}"], check=True, capture_output=True, text=True,
                   timeout=300, cwd=package.parent)
    (wheel,) = dest.glob(f"kitctl_{package.name.removeprefix('kitctl-').replace('-', '_')}-*.whl")
    return wheel


def scaffolded_wheel(parent: Path, name: str = NAME, edit: tuple[str, str] | None = None) -> Path:
    """A scaffolded plugin's wheel; `edit` = (old, new) text replaced in its module first."""
    package = scaffold(parent, name)
    if edit is not None:
        module = package / f"kitctl_{name.replace('-', '_')}" / "__init__.py"
        text = module.read_text(encoding="utf-8")
        assert edit[0] in text
        module.write_text(text.replace(*edit), encoding="utf-8")
    return build_wheel(package, parent / "dist")

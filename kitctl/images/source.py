"""Where image builds take their inputs: a source checkout of the kit.

Images are built from the repository (Dockerfiles in `images/`, the project
itself as wheels), not from an installed kitctl, so the checkout is located
explicitly and refused with one line when it is not one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from kitctl.images import PYTHON_SERVICES


def default_source_dir() -> Path:
    """The checkout this kitctl is imported from (repository root)."""
    return Path(__file__).resolve().parents[2]


def checked_source_dir(source: Path | None) -> Path:
    """`source` (or the default) when it holds `pyproject.toml` and `images/`."""
    from kitctl.errors import InvalidInput

    root = (source or default_source_dir()).resolve()
    if not (root / "pyproject.toml").is_file() or not (root / "images").is_dir():
        raise InvalidInput(f"{root} is not a kitctl source checkout (pyproject.toml and images/ needed); pass --source DIR")
    return root


def build_wheels(source: Path, dest: Path) -> list[Path]:
    """`pip wheel` the project and all its dependencies into `dest`.

    Runs on the host (which reaches the package index); images then install
    with `--no-index`. Hatchling builds reproducibly, so an unchanged source
    gives identical wheels and Docker reuses its cached venv layer.
    """
    from kitctl.errors import KitError

    dest.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", SOURCE_DATE_EPOCH=os.environ.get("SOURCE_DATE_EPOCH", "315532800"))
    cmd = [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(dest), str(source)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise KitError(f"building wheels failed: {_telling_line(proc.stderr or proc.stdout, proc.returncode)}")
    return sorted(dest.glob("*.whl"))


def _telling_line(output: str, returncode: int) -> str:
    """The line of pip's output that names the cause (the last `...Error:` line)."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    causes = [ln for ln in lines if "Error:" in ln or ln.startswith("ERROR:")]
    if causes:
        return causes[-1]
    return lines[-1] if lines else f"pip exited with {returncode}"


def assemble_context(source: Path, service: str, wheels: Path | None, dest: Path) -> Path:
    """A build context for `service`: its images/<service>/ files, images/common/,
    and (for Python services) the wheels, hard-linked when possible."""
    images = source / "images"
    ctx = dest / service
    if ctx.exists():
        shutil.rmtree(ctx)
    shutil.copytree(images / service, ctx)
    common = images / "common"
    if common.is_dir():
        for item in common.iterdir():
            shutil.copy2(item, ctx / item.name)
    if service in PYTHON_SERVICES:
        if wheels is None:
            raise ValueError(f"{service} needs wheels")
        (ctx / "wheels").mkdir()
        for whl in wheels.glob("*.whl"):
            _link_or_copy(whl, ctx / "wheels" / whl.name)
    return ctx


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)

"""Where image builds take their inputs: a source checkout of the kit.

Images are built from the repository (Dockerfiles in `images/`, the project
itself as wheels), not from an installed kitctl, so the checkout is located
explicitly and refused with one line when it is not one.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

from kitctl.images import PYTHON_SERVICES, dockerfile_dir


def default_source_dir() -> Path:
    """The checkout this kitctl is imported from (repository root)."""
    return Path(__file__).resolve().parents[2]


def checked_source_dir(source: Path | None) -> Path:
    """`source` (or the default) when it holds `pyproject.toml` and `images/`."""
    from kitcore.errors import InvalidInput

    root = (source or default_source_dir()).resolve()
    if not (root / "pyproject.toml").is_file() or not (root / "images").is_dir():
        raise InvalidInput(f"{root} is not a kitctl source checkout (pyproject.toml and images/ needed); pass --source DIR")
    return root


def build_wheels(source: Path, dest: Path, cache: Path | None = None) -> list[Path]:
    """Wheels of the project and all its dependencies in `dest`, built on the host.

    The host reaches the package index; images then install with `--no-index`.
    Dependency wheels are cached per dependency list (resolving them is the slow
    part); the project's own wheel is rebuilt every time. Hatchling builds
    reproducibly, so an unchanged source gives identical bytes and Docker
    reuses its cached venv layer.
    """
    dest.mkdir(parents=True, exist_ok=True)
    deps = (cache or default_wheel_cache()) / _dependency_key(source)
    if not deps.is_dir():
        _pip_wheel(source, dest, with_deps=True)
        _store_dependency_wheels(dest, deps)
    else:
        _pip_wheel(source, dest, with_deps=False)
        for whl in deps.glob("*.whl"):
            _link_or_copy(whl, dest / whl.name)
    return sorted(dest.glob("*.whl"))


def default_wheel_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kitctl" / "wheels"


def _dependency_key(source: Path) -> str:
    """Names the dependency set: the declared dependencies and this Python."""
    import hashlib
    import tomllib

    project = tomllib.loads((source / "pyproject.toml").read_text())["project"]
    material = "\n".join(sorted(project.get("dependencies", []))) + f"\n{sys.version_info[:2]}\n{sys.platform}"
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def _pip_wheel(source: Path, dest: Path, with_deps: bool) -> None:
    from kitcore.errors import KitError

    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", SOURCE_DATE_EPOCH=os.environ.get("SOURCE_DATE_EPOCH", "315532800"))
    cmd = [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(dest), str(source)]
    if not with_deps:
        cmd.insert(4, "--no-deps")
        if importlib.util.find_spec("hatchling") is not None:  # skip a fresh build env: 3x faster
            cmd.insert(4, "--no-build-isolation")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise KitError(f"building wheels failed: {_telling_line(proc.stderr or proc.stdout, proc.returncode)}")


def _store_dependency_wheels(built: Path, deps: Path) -> None:
    """Copy every wheel but the project's own into the cache, atomically."""
    import tempfile

    deps.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".partial-", dir=deps.parent))
    for whl in built.glob("*.whl"):
        if not whl.name.startswith("kitctl-"):
            shutil.copy2(whl, staging / whl.name)
    try:
        staging.rename(deps)
    except OSError:  # another build stored it first
        shutil.rmtree(staging, ignore_errors=True)


def _telling_line(output: str, returncode: int) -> str:
    """The line of pip's output that names the cause (the last `...Error:` line)."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    causes = [ln for ln in lines if "Error:" in ln or ln.startswith("ERROR:")]
    if causes:
        return causes[-1]
    return lines[-1] if lines else f"pip exited with {returncode}"


def assemble_context(source: Path, service: str, wheels: Path | None, dest: Path) -> Path:
    """A build context for `service`: its Dockerfile folder (`dockerfile_dir`), images/common/,
    and (for Python services) the wheels, hard-linked when possible."""
    images = source / "images"
    ctx = dest / service
    if ctx.exists():
        shutil.rmtree(ctx)
    shutil.copytree(images / dockerfile_dir(service), ctx)
    common = images / "common"
    if common.is_dir():
        for item in common.iterdir():
            shutil.copy2(item, ctx / item.name)
    if service in PYTHON_SERVICES:
        if wheels is None:
            raise ValueError(f"{service} needs wheels")
        # deps/ and kit/ apart: a change to the kit alone rebuilds only the last, small layer
        for sub in ("deps", "kit"):
            (ctx / "wheels" / sub).mkdir(parents=True)
        for whl in wheels.glob("*.whl"):
            sub = "kit" if whl.name.startswith("kitctl-") else "deps"
            _link_or_copy(whl, ctx / "wheels" / sub / whl.name)
    return ctx


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)

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
    """The project's wheel and the locked dependency wheels in `dest`, on the host.

    Dependencies are exactly `requirements.lock`: the released wheels it pins,
    downloaded with `--require-hashes` (a file whose sha256 the lock does not
    list is refused), never resolved afresh. The host reaches the package index;
    images then install the same files with `--require-hashes --no-index`. They
    are cached per lock; the project's own wheel is rebuilt every time. Hatchling
    builds reproducibly, so an unchanged source gives identical bytes and Docker
    reuses its cached venv layer.
    """
    from kitctl.images.lock import RUNTIME_LOCK

    dest.mkdir(parents=True, exist_ok=True)
    lock = source / RUNTIME_LOCK
    if not lock.is_file():
        from kitcore.errors import InvalidInput

        raise InvalidInput(f"{lock} is missing: images install the locked dependencies (scripts/lock.sh writes it)")
    deps = (cache or default_wheel_cache()) / _dependency_key(lock)
    if not deps.is_dir():
        _pip_download(lock, dest)
        _store_dependency_wheels(dest, deps)
    else:
        for whl in deps.glob("*.whl"):
            _link_or_copy(whl, dest / whl.name)
    _pip_wheel(source, dest)
    return sorted(dest.glob("*.whl"))


def default_wheel_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kitctl" / "wheels"


def _dependency_key(lock: Path) -> str:
    """Names the dependency set: the lock's bytes, this Python and platform."""
    import hashlib
    import platform

    material = lock.read_bytes() + f"\n{sys.version_info[:2]}\n{sys.platform}\n{platform.machine()}".encode()
    return hashlib.sha256(material).hexdigest()[:16]


def _pip_download(lock: Path, dest: Path) -> None:
    """The lock's wheels for this Python, hash-checked; no source builds (their hashes would not match)."""
    _pip(["download", "--quiet", "--require-hashes", "--no-deps", "--only-binary=:all:", "--dest", str(dest),
          "-r", str(lock)], "downloading the locked dependencies")


def _pip_wheel(source: Path, dest: Path) -> None:
    cmd = ["wheel", "--quiet", "--no-deps", "--wheel-dir", str(dest), str(source)]
    if importlib.util.find_spec("hatchling") is not None:  # skip a fresh build env: 3x faster
        cmd.insert(1, "--no-build-isolation")
    _pip(cmd, "building the kit's wheel")


def _pip(args: list[str], what: str) -> None:
    from kitcore.errors import KitError

    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", SOURCE_DATE_EPOCH=os.environ.get("SOURCE_DATE_EPOCH", "315532800"))
    proc = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise KitError(f"{what} failed: {_telling_line(proc.stderr or proc.stdout, proc.returncode)}")


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


def assemble_context(source: Path, service: str, wheels: Path | None, dest: Path,
                     plugin_wheels: list[Path] | None = None) -> Path:
    """A build context for `service`: its Dockerfile folder (`dockerfile_dir`), images/common/,
    (for Python services) the wheels, hard-linked when possible, and (for the proxy) the shop's static files.
    Third-party plugin wheels go to wheels/plugins/ (an empty folder when there are none, so every Python
    stage builds the same way)."""
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
        for sub in ("deps", "kit", "plugins"):
            (ctx / "wheels" / sub).mkdir(parents=True)
        for whl in wheels.glob("*.whl"):
            sub = "kit" if whl.name.startswith("kitctl-") else "deps"
            _link_or_copy(whl, ctx / "wheels" / sub / whl.name)
        for whl in plugin_wheels or []:
            _link_or_copy(whl, ctx / "wheels" / "plugins" / whl.name)
        _write_locks(source, ctx / "wheels" / "deps")
    if service == "proxy":
        _versioned_static(source / "storefront" / "static", ctx / "static")
    return ctx


def _versioned_static(static: Path, dest: Path) -> None:
    """The storefront's static files under their versioned names (kitcore.assets), which the proxy serves itself."""
    from kitcore.assets import versioned

    dest.mkdir()
    for plain, hashed in versioned(static).items():
        shutil.copyfile(static / plain, dest / hashed)


def _write_locks(source: Path, deps: Path) -> None:
    """The lock the image installs from, and its pip + setuptools entries, installed first."""
    from kitctl.images.lock import IMAGE_TOOLS, RUNTIME_LOCK, read_lock, subset

    lock = source / RUNTIME_LOCK
    shutil.copyfile(lock, deps / "requirements.lock")
    (deps / "tools.lock").write_text(subset(read_lock(lock), IMAGE_TOOLS), encoding="utf-8")


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)

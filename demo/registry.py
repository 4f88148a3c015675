"""The demo's own image registry: Debian's `docker-registry` on the demo's port, reading HQ's access list.

HQ grants each licence pull access in its htpasswd file, which a registry reads
when it starts. The shared registry of scripts/services.sh (127.0.0.1:5000) is
never restarted or re-pointed for a demo: other runs rely on it. Each demo runs
its own instance instead, with its own storage under the demo's directory and
HQ's file as its access list (plus the shared admin, who pushes the images), and
stops only that process (by the pid it recorded) when the demo goes down.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from demo.services import registry_admin
from kitcore.errors import KitError

START_SECONDS = 30


def registry_dir(root: Path) -> Path:
    return root / "registry"


def start_registry(root: Path, address: str, htpasswd: Path) -> None:
    """Start (or keep) the demo's registry on `address`, allowing HQ's `htpasswd` entries and the admin."""
    from hq.registry import Htpasswd

    if _answers(address):
        if _pid(root) is None:
            raise KitError(f"something else answers on {address}: choose another demo registry port")
        return
    binary = shutil.which("docker-registry")
    if binary is None:
        raise KitError("docker-registry is not installed (apt-get install docker-registry)")
    Htpasswd(htpasswd).set(*registry_admin())
    where = registry_dir(root)
    (where / "data").mkdir(parents=True, exist_ok=True, mode=0o700)
    config = where / "config.yml"
    config.write_text(_config(address, where / "data", htpasswd))
    config.chmod(0o600)
    with open(where / "registry.log", "ab") as log:
        process = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    (where / "registry.pid").write_text(f"{process.pid}\n")
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if _answers(address):
            return
        if process.poll() is not None:
            break
        time.sleep(0.3)
    stop_registry(root)
    raise KitError(f"the demo registry did not answer on {address}; see {where / 'registry.log'}")


def stop_registry(root: Path) -> None:
    """Stop the demo's own registry process (the one whose pid it recorded), nothing else."""
    pid = _pid(root)
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            if not running(pid):
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    (registry_dir(root) / "registry.pid").unlink(missing_ok=True)


def running(pid: int) -> bool:
    """Whether process `pid` still runs. A child of this process that has exited stays a zombie, which
    `kill(pid, 0)` still finds, until it is reaped: it is reaped here."""
    try:
        exited, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not a child of ours, or reaped already
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return exited == 0


def _pid(root: Path) -> int | None:
    path = registry_dir(root) / "registry.pid"
    try:
        pid = int(path.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"docker-registry" in cmdline and str(registry_dir(root)).encode() in cmdline else None


def _answers(address: str) -> bool:
    """A registry with authentication answers /v2/ with 401."""
    try:
        urllib.request.urlopen(f"http://{address}/v2/", timeout=2)
    except urllib.error.HTTPError as exc:
        return exc.code == 401
    except OSError:
        return False
    return False


def _config(address: str, data: Path, htpasswd: Path) -> str:
    return f"""version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {data}
  delete:
    enabled: true
http:
  addr: {address}
  secret: {secrets.token_hex(32)}
auth:
  htpasswd:
    realm: kitctl-demo-registry
    path: {htpasswd}
"""

"""The local services `scripts/services.sh` runs: Docker engine, registry, sshd, PostgreSQL.

The demo and the tests start them through the script and find their state
(the registry's admin credentials, the sshd client key) where it keeps it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from kitcore.errors import KitError

REPO = Path(__file__).resolve().parents[1]


def state_dir() -> Path:
    """Where scripts/services.sh keeps its state (the same rule as the script)."""
    if os.environ.get("KITCTL_STATE_DIR"):
        return Path(os.environ["KITCTL_STATE_DIR"])
    if os.geteuid() == 0:
        return Path("/var/lib/kitctl-services")
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kitctl-services"


def services(action: str, service: str, env: dict[str, str] | None = None) -> None:
    script = REPO / "scripts" / "services.sh"
    done = subprocess.run(["bash", str(script), action, service], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)
    if done.returncode != 0:
        raise KitError(f"services.sh {action} {service} failed: {done.stderr.strip()[-300:]}")


def registry_admin() -> tuple[str, str]:
    """The registry's admin user and password (generated once by services.sh, mode 0600)."""
    reg = state_dir() / "registry"
    return (reg / "admin.username").read_text().strip(), (reg / "admin.password").read_text().strip()

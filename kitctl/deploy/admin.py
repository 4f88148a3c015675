"""The storefront's first administrator, created once, right after the first deploy.

The password is generated inside the container by the storefront itself
(`python -m storefront create-admin NAME`) and shown to the person exactly once;
kitctl keeps only a marker that it was done, never the password.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kitcore.sitedir import SiteDir

if TYPE_CHECKING:
    from docker import APIClient

STOREFRONT = "storefront"
COMMAND = ["python", "-m", "storefront", "create-admin"]


@dataclass(frozen=True)
class AdminResult:
    ok: bool
    output: str  # the generated password on success, else the storefront's last error line


def needs_first_admin(site_dir: Path, created_services: list[str]) -> bool:
    return STOREFRONT in created_services and not SiteDir(site_dir).admin_created.exists()


def create_first_admin(api: "APIClient", container: str, site_dir: Path, name: str = "admin") -> AdminResult:
    """Exec the storefront's create-admin in its container; mark the site on success."""
    exec_id = api.exec_create(container, [*COMMAND, name], stdout=True, stderr=True)["Id"]
    stdout, stderr = api.exec_start(exec_id, demux=True)
    output = (stdout or b"").decode("utf-8", "replace").strip()
    code = api.exec_inspect(exec_id).get("ExitCode")
    if code != 0 or not output:
        problem = (stderr or b"").decode("utf-8", "replace").strip() or f"exit code {code}"
        return AdminResult(False, problem.splitlines()[-1])
    output = output.splitlines()[-1]  # the storefront prints the generated password last
    marker = SiteDir(site_dir).admin_created
    marker.parent.mkdir(mode=0o700, exist_ok=True)
    marker.write_text(f"{name}\n", encoding="utf-8")
    marker.chmod(0o600)
    return AdminResult(True, output)

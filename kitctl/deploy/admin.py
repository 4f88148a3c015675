"""The storefront's first administrator: created whenever the site database has none.

After every deploy that created or recreated the storefront (or while the site
has no marker yet), kitctl asks the storefront to create NAME only if the
database has no admin (`python -m storefront create-admin NAME --if-no-admin`):
a database lost with its volume gets a new first admin even though the marker
on the host says one was made. The password is generated inside the container
and shown to the person exactly once; kitctl keeps only a marker, never the password.
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
IF_NO_ADMIN = "--if-no-admin"


@dataclass(frozen=True)
class AdminResult:
    ok: bool
    output: str  # the generated password on success ("" when the database already had an admin), else the error


def needs_first_admin(site_dir: Path, created_services: list[str]) -> bool:
    """Ask the storefront whenever it was (re)created: its database may be new though the marker is not."""
    return STOREFRONT in created_services or not SiteDir(site_dir).admin_created.exists()


def create_first_admin(api: "APIClient", container: str, site_dir: Path, name: str = "admin") -> AdminResult:
    """Exec the storefront's create-admin in its container; mark the site on success."""
    exec_id = api.exec_create(container, [*COMMAND, name, IF_NO_ADMIN], stdout=True, stderr=True)["Id"]
    stdout, stderr = api.exec_start(exec_id, demux=True)
    output = (stdout or b"").decode("utf-8", "replace").strip()
    code = api.exec_inspect(exec_id).get("ExitCode")
    if code != 0:
        problem = (stderr or b"").decode("utf-8", "replace").strip() or f"exit code {code}"
        return AdminResult(False, problem.splitlines()[-1])
    output = output.splitlines()[-1] if output else ""  # the generated password, printed last; none: had an admin
    marker = SiteDir(site_dir).admin_created
    marker.parent.mkdir(mode=0o700, exist_ok=True)
    marker.write_text(f"{name}\n", encoding="utf-8")
    marker.chmod(0o600)
    return AdminResult(True, output)

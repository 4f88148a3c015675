"""The storefront's first administrator: created whenever the site database has none.

After every deploy that created or recreated the storefront (or while the site
has no marker yet), kitctl asks the storefront to create NAME only if the
database has no admin (`python -m storefront create-admin NAME --if-no-admin`):
a database lost with its volume gets a new first admin even though the marker
on the host says one was made. The password is generated inside the container
and shown to the person exactly once; kitctl keeps only a marker, never the password.

`kitctl admin list | create | reset-password | disable` run the storefront's
staff command (`python -m storefront staff …`) the same way, in the running
storefront container: the functions its admin web UI uses; so does
`kitctl plugins admin` (`python -m storefront plugin-admin …`) on a deployed site.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kitctl.deploy import engine_exec
from kitcore.errors import InvalidInput
from kitcore.sitedir import SiteDir

if TYPE_CHECKING:
    import docker
    from docker import APIClient

    from kitctl.deploy.compose import Project

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
    result = run_in_storefront(api, container, [*COMMAND, name, IF_NO_ADMIN])
    if not result.ok:
        return result
    output = result.output.splitlines()[-1] if result.output else ""  # the password, printed last; none: had one
    marker = SiteDir(site_dir).admin_created
    marker.parent.mkdir(mode=0o700, exist_ok=True)
    marker.write_text(f"{name}\n", encoding="utf-8")
    marker.chmod(0o600)
    return AdminResult(True, output)


def run_in_storefront(api: "APIClient", container: str, command: list[str]) -> AdminResult:
    """Exec `command` in the storefront container: its stdout, or its last error line."""
    result = engine_exec.run(api, container, command)
    if result.exit_code != 0:
        problem = result.stderr.decode("utf-8", "replace").strip() or f"exit code {result.exit_code}"
        return AdminResult(False, problem.splitlines()[-1])
    return AdminResult(True, result.stdout.decode("utf-8", "replace").strip())


STAFF = ["python", "-m", "storefront", "staff"]
PLUGIN_ADMIN = ["python", "-m", "storefront", "plugin-admin"]


def staff(client: "docker.DockerClient", project: "Project", args: list[str]) -> str:
    """`kitctl admin …`: the storefront's staff command in its running container; InvalidInput on its refusal."""
    from kitctl.deploy.identity import check_ours
    from kitctl.deploy.operate import running_container

    return _in_running_storefront(client, project, [*STAFF, *args])


def plugin_action(client: "docker.DockerClient", project: "Project", name: str, action: str,
                  values: dict[str, str]) -> list[dict[str, Any]]:
    """`kitctl plugins admin …` on a deployed site: the action run by the storefront, under the licence the shop
    goes by (HQ's newest, from the site database), on the site database only it can reach."""
    import json

    return json.loads(_in_running_storefront(client, project, [*PLUGIN_ADMIN, name, action, json.dumps(values)]))


def _in_running_storefront(client: "docker.DockerClient", project: "Project", command: list[str]) -> str:
    """`command` in this site's running storefront: its stdout; InvalidInput with its one-line refusal."""
    from kitctl.deploy.identity import check_ours
    from kitctl.deploy.operate import running_container

    check_ours(client.api, project)
    result = run_in_storefront(client.api, running_container(client, project, STOREFRONT), command)
    if not result.ok:
        raise InvalidInput(result.output.removeprefix("error: "))
    return result.output


"""The newest `upgrade` command the agent stored, read from the site database and verified again here.

The agent runs in a container without the Docker socket, so it cannot redeploy
its own stack: it verifies HQ's signed `upgrade` command, stores the token in
`hq_commands` and acknowledges it. The host service reads that token inside
the db container (psql over its local socket, as `kitctl status` reads the
licence) and trusts nothing it says until the signature verifies against the
site's pinned HQ keys and the command names this very site.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kitcore.errors import KitError
from kitcore.images import IMAGE_TAG

if TYPE_CHECKING:
    import docker

    from kitctl.deploy.compose import Project
    from kitcore.licence.commands import CommandEnvelope
    from kitcore.licence.keys import PinnedKeys

UPGRADE_QUERY = ("SELECT seq || ' ' || token FROM hq_commands WHERE type = 'upgrade' AND applied_at IS NOT NULL "
                 "AND coalesce(outcome, '') NOT LIKE 'refused%' ORDER BY seq DESC LIMIT 1")


@dataclass(frozen=True)
class UpgradeCommand:
    """A verified upgrade command for this site."""

    id: str
    seq: int
    version: str
    exp: int


class CommandNotTrusted(KitError):
    """The stored command does not verify, names another site, or asks for no valid version."""


def newest_upgrade(client: "docker.DockerClient", project: "Project", db_service: str = "db") -> str | None:
    """The newest applied upgrade command's token in the site database; None when there is none."""
    from kitctl.deploy.drift import token_query
    from kitctl.deploy.operate import _container, _exec

    base = token_query(project, db_service)
    container = _container(client, project, db_service, required=False) if base else None
    if base is None or container is None:
        return None
    code, output = _exec(client, container, [*base[:-1], UPGRADE_QUERY])
    if code != 0:
        raise KitError(f"cannot read the site's commands: {output.strip().splitlines()[-1:] or ['psql failed']}")
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return lines[-1].split(" ", 1)[1].strip() if lines and " " in lines[-1] else None


def verified_upgrade(token: str, keys: "PinnedKeys", site_id: str) -> UpgradeCommand:
    """The command the token carries, once its signature, site, type and version check out."""
    from kitcore.licence.commands import CommandRefused, verify_command

    try:
        envelope: CommandEnvelope = verify_command(token, keys)
    except CommandRefused as exc:
        raise CommandNotTrusted(f"upgrade command refused: {exc}") from None
    if envelope.site != site_id:
        raise CommandNotTrusted(f"upgrade command refused: it is for site {envelope.site!r}")
    if envelope.type != "upgrade":
        raise CommandNotTrusted(f"command refused: a {envelope.type} command is not an upgrade")
    version = envelope.payload.get("version")
    if not isinstance(version, str) or not IMAGE_TAG.match(version):
        raise CommandNotTrusted("upgrade command refused: its version is not an image tag")
    return UpgradeCommand(envelope.id, envelope.seq, version, envelope.exp)


def site_keys(site_dir: Path) -> "PinnedKeys":
    from kitcore.licence.keys import load_jwks
    from kitcore.sitedir import SiteDir

    return load_jwks(SiteDir(site_dir).hq_keys)

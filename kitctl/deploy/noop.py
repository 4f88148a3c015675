"""Is `kitctl up` a no-op? Answered with the standard library before the CLI framework loads.

A second `kitctl up` with nothing changed is the command licensees run most
(from cron, from a deploy script). The answer needs one container list, one
image lookup per image and the config hashes, so this module decides it from
the same pure functions the full path uses (`plan_services`, the hashes, the
cached licence verification), and answers "not sure" whenever anything would
need the full path: then the full `up` runs and decides for itself.
It only ever concludes "nothing to do"; it never changes anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kitctl.deploy import doctor
from kitctl.deploy.compose import load_project
from kitctl.deploy.engine import DEFAULT_TARGET
from kitctl.deploy.engine_socket import EngineError, EngineSocket
from kitctl.deploy.hashing import config_hash, mounts_hash
from kitctl.deploy.labels import project_filter
from kitctl.deploy.plan import orphans, plan_services, summary
from kitctl.deploy.site import cached_licence, site_domain, site_url
from kitctl.deploy.state import by_service, running_from_list
from kitctl.errors import KitError


@dataclass(frozen=True)
class Unchanged:
    """What `kitctl up` prints when nothing is to be done."""

    message: str
    url: str | None
    warnings: list[str]


def unchanged_stack(site_dir: Path, target: str | None) -> Unchanged | None:
    """`Unchanged` when a full `up` would change nothing; None when the full path must decide."""
    target = target or DEFAULT_TARGET
    if not target.startswith("unix://") or (site_dir / "site.toml").is_file() or not (site_dir / "compose.yaml").is_file():
        return None
    site_dir = site_dir.resolve()
    try:
        if cached_licence(site_dir, None, None) is None:
            return None
        domain_warnings = doctor.start_domain_check(site_domain(site_dir))
        project = load_project(site_dir)
        with EngineSocket(target) as engine:
            current, leftovers = by_service(running_from_list(engine.containers(project_filter(project.name))))
            ids = {ref: engine.image_id(ref) for ref in sorted({s.image for s in project.services.values()})}
    except (KitError, EngineError, OSError, ValueError):
        return None
    if leftovers or orphans(project, current) or not all(ids.values()):
        return None
    hashes = {name: (config_hash(project, name), mounts_hash(project, name)) for name in project.services}
    actions = plan_services(project, hashes, current, ids)
    if any(action.changes_anything for action in actions):
        return None
    return Unchanged(summary(actions), site_url(project, site_dir), domain_warnings())

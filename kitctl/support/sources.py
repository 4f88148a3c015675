"""The parts of a support bundle, read from the site's Docker engine (local or over ssh)."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kitctl.support.gather import Sources

if TYPE_CHECKING:
    import docker

    from kitctl.deploy.compose import Project

AGENT_METRICS = ("python3 -c \"import urllib.request;"
                 "print(urllib.request.urlopen('http://127.0.0.1:9464/metrics', timeout=5).read().decode())\"")
STATE_QUERY = ("SELECT row_to_json(s) FROM (SELECT licence_status, status_reason, tier, features, categories, "
               "licence_expires_at, last_sync_at, last_heartbeat_at, applied_seq, health FROM site_state) s")
AUDIT_QUERY = ("SELECT coalesce(json_agg(a), '[]') FROM (SELECT id, at, action, detail FROM audit_log "
               "ORDER BY id DESC LIMIT {n}) a")


def engine_sources(client: "docker.DockerClient", project: "Project", site_dir: Path, host: str | None) -> Sources:
    from kitctl.deploy import operate

    def status() -> Any:
        from kitctl.deploy.drift import plugin_drift

        return {"project": project.name, "services": [r.as_dict() for r in operate.status(client, project)],
                "licence": operate.licence_state(client, project),
                **plugin_drift(client, project, site_dir).as_dict()}

    def doctor() -> Any:
        from kitctl.deploy import doctor as checks
        from kitctl.engine import is_remote
        from kitctl.deploy.rendered_site import site_domain, verified_licence

        results = checks.run_checks(client, project, is_remote(host), lambda: verified_licence(site_dir, None, None),
                                    site_domain(site_dir))
        return {"ok": not checks.failures(results), "checks": [c.as_dict() for c in results]}

    def versions() -> Any:
        from kitcore import __version__

        engine = client.version()
        return {"kitctl": __version__, "python": platform.python_version(), "engine": engine.get("Version"),
                "engine_os": f"{engine.get('Os')}/{engine.get('Arch')}",
                "images": {name: s.image for name, s in project.services.items()}}

    def logs(service: str, lines: int) -> str:
        return b"".join(operate.logs(client, project, service, False, lines)).decode("utf-8", "replace")

    def run(service: str, command: list[str]) -> str:
        container = operate._container(client, project, service, required=True)
        assert container is not None
        code, output = operate._exec(client, container, command)
        if code != 0:
            raise RuntimeError(f"{service}: exit {code}: {output.strip().splitlines()[-1:] or ''}")
        return output

    def psql(sql: str) -> Any:
        import json

        env = dict(project.services["db"].environment)
        # the stack's own database user (the db image makes no `postgres` role); the socket is trusted inside
        output = run("db", ["psql", "-X", "-qtA", "-U", env.get("POSTGRES_USER", "kit"), "-d", env.get("POSTGRES_DB", "kit"),
                            "-c", sql])
        return json.loads(output) if output.strip() else None  # one value; json_agg spreads it over lines

    return Sources(
        status=status, doctor=doctor, versions=versions, services=lambda: sorted(project.services), logs=logs,
        metrics=lambda: run("agent", ["sh", "-c", AGENT_METRICS]), site_state=lambda: psql(STATE_QUERY),
        audit=lambda n: psql(AUDIT_QUERY.format(n=int(n))))

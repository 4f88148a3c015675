"""A ServiceDef → docker-py's `create_service` / `update_service` arguments.

Tasks reach each other by DNS round robin (`dnsrr`): the service VIP and the
ingress routing mesh need the kernel's IPVS, which an engine without it (or
without iptables) does not have; published ports are host-mode, one task per
node, on every address of the node (Swarm has no host address to bind to).
"""

from __future__ import annotations

from typing import Any, Mapping

from kitctl.deploy.swarm.definitions import MONITOR_SECONDS, SPEC_HASH, ServiceDef

NANO = 1_000_000_000


def service_kwargs(defn: ServiceDef, ids: Mapping[str, str]) -> dict[str, Any]:
    """`ids` = config/secret name → engine id."""
    from docker import types

    container = types.ContainerSpec(
        image=defn.image,
        command=list(defn.entrypoint) if defn.entrypoint is not None else None,
        args=list(defn.command) if defn.command is not None else None,
        env=[f"{k}={v}" for k, v in defn.environment],
        labels=dict(defn.labels),
        mounts=[*(_volume(v) for v in defn.volumes), *(types.Mount(t.split(":", 1)[0], None, type="tmpfs")
                                                        for t in defn.tmpfs)],
        user=defn.user,
        read_only=defn.read_only or None,
        healthcheck=_healthcheck(defn),
        hosts=list(defn.hosts) or None,
        configs=[types.ConfigReference(ids[c.name], c.name, c.target, c.uid, c.gid, c.mode) for c in defn.configs] or None,
        secrets=[types.SecretReference(ids[s.name], s.name, s.target, str(s.uid), str(s.gid), s.mode)
                 for s in defn.secrets] or None,
        cap_add=list(defn.cap_add) or None,
        cap_drop=list(defn.cap_drop) or None,
    )
    resources = types.Resources(cpu_limit=int(defn.cpus * NANO) if defn.cpus else None, mem_limit=defn.memory)
    template = types.TaskTemplate(
        container_spec=container, resources=resources,
        restart_policy=types.RestartPolicy(condition=defn.restart, delay=2 * NANO),
        placement=types.Placement(constraints=list(defn.constraints)) if defn.constraints else None,
        networks=[types.NetworkAttachmentConfig(n, aliases=[defn.service]) for n in defn.networks],
    )
    return {
        "task_template": template,
        "name": defn.name,
        "labels": dict(defn.labels) | {SPEC_HASH: defn.spec_hash()},
        "mode": types.ServiceMode("replicated", replicas=defn.replicas),
        "update_config": update_config(defn),
        "rollback_config": types.RollbackConfig(parallelism=1, order=defn.order, failure_action="pause",
                                                monitor=int(MONITOR_SECONDS * NANO)),
        "endpoint_spec": types.EndpointSpec(mode="dnsrr", ports={
            published: (target, protocol, "host") for published, target, protocol in defn.ports} or None),
    }


def update_config(defn: ServiceDef) -> Any:
    """One task at a time, the new one healthy before the old stops (unless they would collide), watched
    for MONITOR_SECONDS; a failure rolls the service back through Swarm's own rollback."""
    from docker import types

    return types.UpdateConfig(parallelism=1, delay=0, failure_action="rollback", monitor=int(MONITOR_SECONDS * NANO),
                              max_failure_ratio=0, order=defn.order)


def _volume(ref) -> Any:
    from docker import types

    driver = types.DriverConfig("local", dict(ref.driver_opts)) if ref.driver_opts else None
    return types.Mount(ref.target, ref.source, type="volume", read_only=ref.read_only, driver_config=driver,
                       labels=dict(ref.labels) or None)


def _healthcheck(defn: ServiceDef) -> Any:
    from docker import types

    if defn.healthcheck is None:
        return None
    test, interval, timeout, retries, start = defn.healthcheck
    return types.Healthcheck(test=list(test), interval=int(interval * NANO), timeout=int(timeout * NANO),
                             retries=retries, start_period=int(start * NANO))

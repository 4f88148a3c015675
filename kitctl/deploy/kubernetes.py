"""The rendered site as Kubernetes manifests: on paper only (validated against the official schemas in the
tests, never applied to a cluster here; see docs/scale-out.md).

The same parsed project `up` deploys, so the same inputs: a StatefulSet for the database (its volume a
claim), a Deployment per other service with the replicas the site recorded, a Service per service, the
site's secrets as one Secret and each service's bound files as a ConfigMap, the healthchecks as
readiness and liveness probes, and a PodDisruptionBudget for every service that runs more than one pod.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kitctl.deploy.swarm.definitions import stack_defs

if TYPE_CHECKING:
    from kitctl.deploy.compose import Project
    from kitctl.deploy.swarm.definitions import ServiceDef, StackDefs

DB_STORAGE = "10Gi"
VOLUME_STORAGE = "1Gi"
KEY = re.compile(r"[^-._a-zA-Z0-9]")


def manifests(project: "Project", owners: dict[str, tuple[int, int, int]] | None = None) -> list[dict[str, Any]]:
    """Every object, in the order `kubectl apply` should meet them (data before the workloads using it)."""
    defs = stack_defs(project, owners or {}, {})
    ns_labels = {"app.kubernetes.io/part-of": project.name, **({"com.kitctl.site": project.site_id}
                                                               if project.site_id else {})}
    objects: list[dict[str, Any]] = [_secret(project, defs, ns_labels)]
    for name, defn in defs.services.items():
        if defn.configs:
            objects.append(_config_map(project, defs, defn, ns_labels))
    for name, defn in defs.services.items():
        objects.append(_service(project, defn, ns_labels))
        objects.append(_workload(project, defn, ns_labels))
        if defn.replicas > 1:
            objects.append(_budget(project, defn, ns_labels))
    return objects


def _meta(project: "Project", name: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"name": f"{project.name}-{name}".lower()[:63], "labels": dict(labels)}


def _selector(defn: "ServiceDef") -> dict[str, str]:
    return {"app.kubernetes.io/name": defn.service}


def _secret(project: "Project", defs: "StackDefs", labels: dict[str, str]) -> dict[str, Any]:
    data = {}
    for defn in defs.services.values():
        for ref in defn.secrets:
            data[KEY.sub("_", ref.target)] = base64.b64encode(defs.files[ref.name].data).decode()
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": _meta(project, "secrets", labels),
            "data": data}


def _config_key(target: str) -> str:
    return KEY.sub("_", target.strip("/"))[-253:]


def _config_map(project: "Project", defs: "StackDefs", defn: "ServiceDef", labels: dict[str, str]) -> dict[str, Any]:
    data, binary = {}, {}
    for ref in defn.configs:
        content = defs.files[ref.name].data
        try:
            data[_config_key(ref.target)] = content.decode("utf-8")
        except UnicodeDecodeError:
            binary[_config_key(ref.target)] = base64.b64encode(content).decode()
    found: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap",
                             "metadata": _meta(project, f"{defn.service}-files", labels), "data": data}
    if binary:
        found["binaryData"] = binary
    return found


def _service(project: "Project", defn: "ServiceDef", labels: dict[str, str]) -> dict[str, Any]:
    """Named after the compose service, so the stack's own addresses (storefront:8000) resolve unchanged."""
    if not defn.ports:  # headless: the name resolves to every ready pod, as dnsrr does on a Swarm
        return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": defn.service, "labels": dict(labels)},
                "spec": {"selector": _selector(defn), "clusterIP": "None"}}
    ports = [{"name": f"p{target}", "port": published, "targetPort": target, "protocol": protocol.upper()}
             for published, target, protocol in defn.ports]
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": defn.service, "labels": dict(labels)},
            "spec": {"selector": _selector(defn), "ports": ports, "type": "LoadBalancer"}}


def _workload(project: "Project", defn: "ServiceDef", labels: dict[str, str]) -> dict[str, Any]:
    stateful = defn.service == "db"
    pod = _pod(project, defn, labels, claims=stateful)
    spec: dict[str, Any] = {"replicas": defn.replicas, "selector": {"matchLabels": _selector(defn)}, "template": pod}
    if stateful:
        spec["serviceName"] = defn.service
        spec["volumeClaimTemplates"] = [
            {"metadata": {"name": _volume_name(v.source)},
             "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": DB_STORAGE}}}}
            for v in defn.volumes]
        kind = "StatefulSet"
    else:
        spec["strategy"] = ({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
                            if defn.order == "start-first" else {"type": "Recreate"})
        kind = "Deployment"
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": _meta(project, defn.service, labels), "spec": spec}


def _pod(project: "Project", defn: "ServiceDef", labels: dict[str, str], claims: bool) -> dict[str, Any]:
    mounts: list[dict[str, Any]] = []
    volumes: list[dict[str, Any]] = []
    if defn.secrets:
        volumes.append({"name": "secrets", "secret": {"secretName": f"{project.name}-secrets".lower()[:63],
                                                       "defaultMode": 0o400,
                                                       "items": [{"key": KEY.sub("_", s.target), "path": s.target}
                                                                 for s in defn.secrets]}})
        mounts.append({"name": "secrets", "mountPath": "/run/secrets", "readOnly": True})
    if defn.configs:
        volumes.append({"name": "files", "configMap": {"name": f"{project.name}-{defn.service}-files".lower()[:63]}})
        mounts += [{"name": "files", "mountPath": c.target, "subPath": _config_key(c.target), "readOnly": True}
                   for c in defn.configs]
    for v in defn.volumes:
        name = _volume_name(v.source)
        mounts.append({"name": name, "mountPath": v.target, "readOnly": v.read_only})
        if not claims:
            volumes.append({"name": name, "emptyDir": {}})
    for index, tmpfs in enumerate(defn.tmpfs):
        volumes.append({"name": f"tmp{index}", "emptyDir": {"medium": "Memory"}})
        mounts.append({"name": f"tmp{index}", "mountPath": tmpfs.split(":", 1)[0]})
    container: dict[str, Any] = {
        "name": defn.service,
        "image": dict(defn.labels).get("io.kitctl.image", defn.image),
        "env": [{"name": k, "value": v} for k, v in defn.environment],
        "volumeMounts": mounts,
        "ports": [{"containerPort": target, "protocol": protocol.upper()} for _, target, protocol in defn.ports],
        "securityContext": _security(defn),
    }
    if defn.command is not None:
        container["args"] = list(defn.command)
    if defn.entrypoint is not None:
        container["command"] = list(defn.entrypoint)
    limits = {**({"cpu": f"{int(defn.cpus * 1000)}m"} if defn.cpus else {}),
              **({"memory": str(defn.memory)} if defn.memory else {})}
    if limits:
        container["resources"] = {"limits": limits}
    if defn.healthcheck is not None:
        container["readinessProbe"] = _probe(defn.healthcheck, failure=defn.healthcheck[3])
        container["livenessProbe"] = _probe(defn.healthcheck, failure=defn.healthcheck[3] * 2)
    return {"metadata": {"labels": {**labels, **_selector(defn)}},
            "spec": {"containers": [container], "volumes": volumes, "automountServiceAccountToken": False}}


def _security(defn: "ServiceDef") -> dict[str, Any]:
    found: dict[str, Any] = {"allowPrivilegeEscalation": False,
                             "capabilities": {"drop": list(defn.cap_drop), "add": list(defn.cap_add)}}
    if defn.read_only:
        found["readOnlyRootFilesystem"] = True
    if defn.user and defn.user.split(":")[0].isdigit():
        found["runAsUser"] = int(defn.user.split(":")[0])
    return found


def _probe(check: tuple, failure: int) -> dict[str, Any]:
    test, interval, timeout, _retries, start = check
    command = list(test[1:]) if test[0] == "CMD" else ["/bin/sh", "-c", " ".join(test[1:])]
    return {"exec": {"command": command}, "periodSeconds": max(1, int(interval)),
            "timeoutSeconds": max(1, int(timeout)), "failureThreshold": failure,
            "initialDelaySeconds": min(int(start), 5)}


def _budget(project: "Project", defn: "ServiceDef", labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": _meta(project, f"{defn.service}-budget", labels),
            "spec": {"minAvailable": defn.replicas - 1, "selector": {"matchLabels": _selector(defn)}}}


def _volume_name(source: str) -> str:
    return KEY.sub("-", source.split("_", 1)[-1]).lower()[:63]


def write(objects: list[dict[str, Any]], path: Path) -> None:
    """One multi-document YAML file, mode 0600 (the Secret carries the site's secrets)."""
    import os

    import yaml

    text = yaml.safe_dump_all(objects, sort_keys=False, allow_unicode=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)

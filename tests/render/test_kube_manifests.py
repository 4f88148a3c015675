"""Replicas as a render input, and the rendered site as Kubernetes manifests validated against the official
schemas (kubernetes-validate ships them): on paper only, never applied to a cluster here."""

from __future__ import annotations

import json
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from kitctl.deploy.compose import load_project
from kitctl.deploy.kubernetes import manifests, write
from kitctl.render import render_site

K8S_VERSION = "1.30"  # a version the package ships schemas for, old enough for most clusters in use


def rendered(flags: dict, **more) -> Path:
    return render_site({**flags, **more}).site_dir


def test_replicas_are_recorded_and_written_only_when_more_than_one(flags) -> None:
    site = rendered(flags)
    compose = yaml.safe_load((site / "compose.yaml").read_text())
    assert "replicas" not in compose["services"]["storefront"]["deploy"]  # an existing site's hash is unchanged
    site = rendered(flags, replicas=3)
    compose = yaml.safe_load((site / "compose.yaml").read_text())
    assert compose["services"]["storefront"]["deploy"]["replicas"] == 3
    assert "replicas" not in compose["services"]["proxy"]["deploy"]
    assert json.loads((site / "kitctl.lock").read_text())["inputs"]["replicas"] == 3
    assert load_project(site).services["storefront"].replicas == 3


def test_replicas_out_of_range_are_refused(flags) -> None:
    from kitcore.errors import InvalidInput

    with pytest.raises((InvalidInput, ValueError)):
        rendered(flags, replicas=0)


def test_manifests_validate_against_the_official_schemas(flags, tmp_path) -> None:
    site = rendered(flags, replicas=3)
    objects = manifests(load_project(site))
    for obj in objects:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objects}
    project = load_project(site).name
    assert ("StatefulSet", f"{project}-db") in kinds and ("Deployment", f"{project}-storefront") in kinds
    assert ("PodDisruptionBudget", f"{project}-storefront-budget") in kinds
    assert {"Secret", "ConfigMap", "Service"} <= {k for k, _ in kinds}
    storefront = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"].endswith("-storefront"))
    assert storefront["spec"]["replicas"] == 3
    assert storefront["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    container = storefront["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["exec"]["command"][-1].endswith("/healthz")
    db = next(o for o in objects if o["kind"] == "StatefulSet")
    assert db["spec"]["volumeClaimTemplates"][0]["spec"]["accessModes"] == ["ReadWriteOnce"]
    out = tmp_path / "kit.yaml"
    write(objects, out)
    assert out.stat().st_mode & 0o777 == 0o600 and len(list(yaml.safe_load_all(out.read_text()))) == len(objects)


def test_the_schema_check_can_fail(flags) -> None:
    objects = manifests(load_project(rendered(flags)))
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    deployment["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_the_command_writes_the_file_and_refuses_a_directory_that_is_not_rendered(flags, tmp_path) -> None:
    from tests.support.cli import kitctl

    site = rendered(flags, replicas=2)
    done = kitctl("kube-manifests", "-o", str(tmp_path / "kit.yaml"), "--site-dir", str(site))
    assert "wrote" in done.stdout and (tmp_path / "kit.yaml").stat().st_mode & 0o777 == 0o600
    refused = kitctl("kube-manifests", "-o", str(tmp_path / "x.yaml"), "--site-dir", str(tmp_path / "none"), check=False)
    assert refused.returncode == 2 and "has no compose.yaml" in refused.stderr and not (tmp_path / "x.yaml").exists()
    swarm_refused = kitctl("up", "--orchestrator", "kubernetes", "--site-dir", str(site), check=False)
    assert swarm_refused.returncode == 2 and "--orchestrator must be one of: engine, swarm" in swarm_refused.stderr

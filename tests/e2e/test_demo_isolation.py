"""A run's demo comes and goes while another demo (a `make demo` stack) keeps running (issue 14, bad case 1).

The running demo is the session's shared one (tests/support/watched_demo.py), launched like `make demo`.

The teardown used to remove every container labelled `com.kitctl.demo=true` and restart the shared
registry: running the e2e loop destroyed a running demo. Now each demo labels what it makes with its own
instance, runs its own registry on its own port, and removes only its own; the shared registry is never
restarted. (Both demos' registries start on a copy of the run's pushed images: tests/support/demo_stack.py.)
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from demo.services import state_dir
from demo.stack import DEMO_LABEL, Demo, demo_down
from tests.support.demo_stack import demo_up_with_run_images
from tests.support.postgres import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def a_demo(root: Path) -> Demo:
    suffix = uuid.uuid4().hex[:6]
    return Demo(root=root, site_id=f"iso-{suffix}", network=f"kitctl-iso-{suffix}", hq_container=f"kitctl-iso-hq-{suffix}",
                hq_port=free_port(), http_port=free_port(), https_port=free_port(), metrics_port=free_port(),
                registry=f"127.0.0.1:{free_port()}")


def shared_registry_pid() -> int:
    return int((state_dir() / "registry" / "registry.pid").read_text().strip())


def owned(engine: Any, demo: Demo) -> dict[str, str]:
    """Containers of the demo: its HQ (instance label) and its site (site label), name → id."""
    found = engine.containers.list(all=True, filters={"label": f"{DEMO_LABEL}={demo.instance}"})
    found += engine.containers.list(all=True, filters={"label": f"com.kitctl.site={demo.site_id}"})
    return {c.name: c.id for c in found}


def anonymous_volumes(engine: Any, demo: Demo) -> set[str]:
    """The unnamed volumes a demo's containers mount (created for an image's VOLUME; nothing else removes them)."""
    found = engine.containers.list(all=True, filters={"label": f"{DEMO_LABEL}={demo.instance}"})
    return {m["Name"] for c in found for m in c.attrs["Mounts"]
            if m["Type"] == "volume" and not (c.attrs["Config"].get("Labels") or {}).get("com.kitctl.site")
            and len(m["Name"]) == 64}


def services_of(engine: Any, demo: Demo) -> set[str]:
    found = engine.containers.list(all=True, filters={"label": f"com.kitctl.site={demo.site_id}"})
    return {c.labels.get("com.kitctl.service", "") for c in found}


def registry_refs(engine, registry: str) -> set[str]:
    """The image names and digests that point into `registry`."""
    return {ref for image in engine.images.list() for ref in [*image.tags, *(image.attrs.get("RepoDigests") or [])]
            if ref.startswith(f"{registry}/")}


def test_a_runs_demo_comes_and_goes_and_the_running_demo_survives(watched, tmp_path_factory) -> None:
    running, engine, _hook = watched  # the demo a person left running: the session's shared one
    before = owned(engine, running)
    assert running.hq_container in before
    assert {"db", "storefront", "agent", "proxy"} <= services_of(engine, running)
    volumes = {v.name for v in engine.volumes.list(filters={"label": f"com.kitctl.site={running.site_id}"})}
    assert volumes
    shared = shared_registry_pid()
    run = a_demo(tmp_path_factory.mktemp("run"))
    anonymous: set[str] = set()
    try:
        demo_up_with_run_images(run)
        anonymous = anonymous_volumes(engine, run)
    finally:
        demo_down(run)
    assert owned(engine, run) == {}
    assert {v.name for v in engine.volumes.list()} & anonymous == set()  # down leaves no anonymous volume behind
    assert registry_refs(engine, run.registry) == set()  # nor a name of its images pushed to or pulled from its registry
    assert registry_refs(engine, running.registry)
    assert owned(engine, running) == before
    assert all(c.status == "running" for c in engine.containers.list(filters={"label": f"com.kitctl.site={running.site_id}"}))
    assert {v.name for v in engine.volumes.list(filters={"label": f"com.kitctl.site={running.site_id}"})} == volumes
    assert shared_registry_pid() == shared  # the shared registry was never restarted
    # the running demo's registry still grants its licence: pull again with the licence's own credentials
    from kitcore.licence.keys import load_jwks
    from kitcore.licence.token import verify_licence

    claims = verify_licence(running.licence_path.read_text().strip(), load_jwks(running.jwks_path)).claims
    grant = claims.registry
    assert grant and grant.url == running.registry
    from kitcore import __version__

    auth = {"username": grant.username, "password": grant.password or ""}
    engine.images.pull(f"{grant.url}/kitctl/proxy", tag=__version__, auth_config=auth)

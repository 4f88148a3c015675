"""A real kit stack for plugin end-to-end tests: the engine, the kit's images, a site run by `kitctl` itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from kitctl.deploy.engine_exec import run_in
from tests.conftest import require
from tests.support.postgres import free_port

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("db", "storefront", "agent", "proxy")
# Run inside the agent container: verify HQ's token and store it exactly as the agent does on a `licence` command.
STORE_AS_AGENT = """
import os, sys
from pathlib import Path
from sqlalchemy import select
from sqlalchemy.orm import Session
from agent.licence import evaluate, store_licence
from kitcore.licence.keys import load_jwks
from sitedb.engine import make_engine
from sitedb.models import SiteState
held = evaluate(sys.argv[1], load_jwks(Path(os.environ["KIT_HQ_KEYS_FILE"])))
engine = make_engine(Path(os.environ["KIT_DATABASE_URL_FILE"]).read_text().strip())
with Session(engine) as session, session.begin():
    if session.execute(select(SiteState.id)).first() is None:
        sys.exit(3)
    store_licence(session, held, "active", None)
"""


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    from tests.infra.fixtures import docker_client

    client = docker_client()
    require(bool(client.ping()), "Docker engine not reachable")
    yield client
    client.close()


@pytest.fixture(scope="module")
def images(engine) -> None:
    """The kit's images as the session builds them (built here only when missing)."""
    from kitcore import __version__
    from kitctl.images.build import image_exists
    from tests.infra.fixtures import kit_images

    wanted = [f"kitctl/{s}:{__version__}" for s in SERVICES] + ["kitctl/base:bookworm"]
    if not all(image_exists(engine, ref) for ref in wanted):
        kit_images()


class Site:
    def __init__(self, root: Path, plugin_path: Path | None = None, prefix: str = "plg") -> None:
        from kitcore.licence.keys import HQKeyStore

        self.site_id = f"{prefix}{uuid.uuid4().hex[:8]}"
        self.project = f"kit-{self.site_id}"  # the compose project kitctl derives from the licence's site id
        self.dir = root / self.site_id
        self.plugin_path = plugin_path
        self.hq = HQKeyStore(root / "hq")
        self.hq.init()
        self.jwks = root / "hq-keys.json"
        self.jwks.write_text(json.dumps(self.hq.jwks()))
        self.port = free_port()

    def licence(self, tier: str) -> str:
        from kitcore.licence.token import issue_licence

        time.sleep(1.1)  # a later `iat` than the licence before: the newest licence wins
        return issue_licence(self.hq, self.site_id, tier, ["game"], 30, "http://127.0.0.1:9")

    def kitctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        paths = [str(ROOT)] + ([str(self.plugin_path)] if self.plugin_path else [])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "COLUMNS": "200"}
        env = {k: v for k, v in env.items() if not k.startswith("KITCTL_")}
        done = subprocess.run([sys.executable, "-m", "kitctl", *args, "--site-dir", str(self.dir)], capture_output=True,
                              text=True, timeout=600, env=env, cwd=ROOT)
        if check and done.returncode != 0:
            raise AssertionError(f"kitctl {' '.join(args)} → {done.returncode}\n{done.stdout}\n{done.stderr}")
        return done

    def status(self) -> dict[str, Any]:
        return json.loads(self.kitctl("status", "--json").stdout)

    def store_as_agent(self, engine: Any, token: str) -> None:
        agent = engine.containers.get(f"{self.project}_agent_1")
        deadline = time.monotonic() + 60
        while True:  # the agent writes its state row once it has started
            done = run_in(agent, ["/opt/kit/bin/python", "-c", STORE_AS_AGENT, token])
            if done.exit_code == 0:
                return
            assert done.exit_code == 3 and time.monotonic() < deadline, done.output.decode()[-500:]
            time.sleep(1)

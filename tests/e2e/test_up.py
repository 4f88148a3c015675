"""`kitctl up` end to end on the real Docker engine, registry and sshd.

The stack: PostgreSQL (kitctl/db), a stand-in web app built FROM the kit's
base image (tests/deploy/fixtures/web.py) and Caddy (kitctl/proxy). Images
are pushed to the local registry and pulled by `kitctl up` with the
credentials the licence grants. Tests run in file order and share one site.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from kitcore.sitedir import SiteDir
from kitctl.cli import run
from kitctl.deploy import noop, ssh_master
from kitctl.deploy.compose import load_project
from demo.services import state_dir
from hq.testing import free_port

from kitctl.deploy.engine_exec import run_in
from tests.conftest import require
from tests.support.cli import kitctl
from tests.support.steady_load import SteadyLoad
from tests.deploy.stack import (
    KIT_VERSION, LOGO_PNG, SiteSpec, build_web_image, issue_test_licence, set_colour, write_site,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = os.environ.get("KITCTL_REGISTRY_ADDR", "127.0.0.1:5000")
SSH_TARGET = f"ssh://root@127.0.0.1:{os.environ.get('KITCTL_SSHD_PORT', '2222')}"
WEB_REPO = f"{REGISTRY}/e2e/kitctl/web"
BROKEN = "9.9.9-broken"


def get(url: str, host: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read()


def fast_check(site_dir: Path) -> str:
    """What kitctl.deploy.noop answers in a fresh process started like `kitctl` (its checks fingerprint the
    interpreter's import path): the no-op message, or "defer" when the full path must decide."""
    code = ("import sys; from pathlib import Path; from kitctl.deploy.noop import unchanged_stack; "
            "found = unchanged_stack(Path(sys.argv[1]), None); print(found.message if found else 'defer')")
    done = subprocess.run([sys.executable, "-c", code, str(site_dir)], capture_output=True, text=True, timeout=60,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def container_ids(client: Any, project: str) -> dict[str, str]:
    return {c.labels["com.docker.compose.service"]: c.id
            for c in client.containers.list(all=True, filters={"label": f"com.docker.compose.project={project}"})
            if not c.name.endswith("_kitctl_old")}


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    script = ROOT / "scripts" / "services.sh"
    require(script.is_file(), "scripts/services.sh is missing")
    started = subprocess.run(["bash", str(script), "start", "all"], capture_output=True, text=True, timeout=600)
    require(started.returncode == 0, f"services did not start: {started.stderr.strip()[-300:]}")
    import docker

    client = docker.from_env(timeout=300)
    require(bool(client.ping()), "Docker engine not reachable")
    yield client
    client.close()


@pytest.fixture(scope="module")
def registry_grant(engine: Any) -> dict[str, str]:
    reg = state_dir() / "registry"
    password = (reg / "admin.password").read_text().strip()
    username = (reg / "admin.username").read_text().strip()
    return {"url": REGISTRY, "username": username, "password": password}


@pytest.fixture(scope="module")
def images(engine: Any, registry_grant: dict[str, str]) -> Iterator[dict[str, str]]:
    """db and proxy from images/ (built once), the stand-in web app at 1.0 and a broken version, pushed;
    afterwards the names this made (the sites' pulls of the web app included) are removed."""
    import docker

    from kitctl.images.build import build_images, image_exists

    missing = [s for s in ("db", "proxy") if not image_exists(engine, f"kitctl/{s}:{KIT_VERSION}")]
    if missing:
        build_images(engine, ROOT, KIT_VERSION, missing)
    auth = {"username": registry_grant["username"], "password": registry_grant["password"]}
    for tag, broken in (("1.0", False), (BROKEN, True)):
        ref = build_web_image(engine, f"{WEB_REPO}:{tag}", tag, broken)
        for line in engine.api.push(WEB_REPO, tag=tag, auth_config=auth, stream=True, decode=True):
            assert "error" not in line, line
        engine.images.remove(ref, force=True)  # `kitctl up` must pull it with the licence's grant
    for service in ("db", "proxy"):  # the broken release ships every kit image at the new tag
        engine.images.get(f"kitctl/{service}:{KIT_VERSION}").tag(f"kitctl/{service}", BROKEN)
    yield {"web": f"{WEB_REPO}:1.0"}
    for ref in (f"{WEB_REPO}:1.0", f"{WEB_REPO}:{BROKEN}", f"kitctl/db:{BROKEN}", f"kitctl/proxy:{BROKEN}"):
        try:
            engine.api.remove_image(ref)
        except docker.errors.NotFound:
            pass


class Site:
    def __init__(self, root: Path, grant: dict[str, str] | None, host: str | None = None) -> None:
        self.project = f"e2e{uuid.uuid4().hex[:8]}"
        self.dir = root / self.project
        self.port = free_port()
        self.host = host
        self.name = "星辰游戏 E2E"
        token, jwks = issue_test_licence(root / "hq", self.project, grant)
        self.jwks = jwks
        write_site(self.dir, SiteSpec(self.project, self.name, self.port, f"{WEB_REPO}:1.0"), token, jwks)

    def args(self, *extra: str) -> list[str]:
        return [*extra, "--site-dir", str(self.dir)] + (["--docker-host", self.host] if self.host else [])

    def up(self, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
        return kitctl("up", *self.args(*extra), check=check)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


@pytest.fixture(scope="module")
def site(tmp_path_factory, images, registry_grant, engine) -> Iterator[Site]:
    s = Site(tmp_path_factory.mktemp("sites"), registry_grant)
    yield s
    kitctl("down", *s.args("--volumes", "--yes"), check=False)


def test_first_up_pulls_with_the_licence_and_serves_the_branded_page(site: Site, engine: Any) -> None:
    done = site.up()
    assert "pull" in done.stdout and "up done" in done.stdout
    assert "healthy" in done.stdout
    status, body = get(site.url)
    page = body.decode()
    assert status == 200 and site.name in page and 'src="/branding/logo.png"' in page
    assert get(site.url + "branding/logo.png") == (200, LOGO_PNG)
    labels = engine.containers.get(f"{site.project}_web_1").labels
    assert labels["com.docker.compose.project"] == site.project
    assert labels["com.docker.compose.oneoff"] == "False" and len(labels["com.docker.compose.config-hash"]) == 64


def test_docker_compose_v1_sees_the_stack(site: Site) -> None:
    require(shutil.which("docker-compose") is not None, "Debian's docker-compose is not installed")
    # wide: a `health: starting` state (kitctl's gate ran the healthcheck before the engine did) wraps names at 80
    done = subprocess.run(["docker-compose", "ps"], cwd=site.dir, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "250"})
    assert done.returncode == 0, done.stderr
    for service in ("db", "web", "proxy"):
        assert f"{site.project}_{service}_1" in done.stdout
    assert done.stdout.count("Up") >= 3


def test_second_up_is_a_no_op(site: Site, engine: Any) -> None:
    before = container_ids(engine, site.project)
    started = time.monotonic()
    done = site.up()
    assert "nothing to do" in done.stdout
    assert container_ids(engine, site.project) == before
    assert time.monotonic() - started < 10
    # the answer came from the framework-free check (asked as `kitctl up` runs it), and the full path agrees
    assert fast_check(site.dir) == "nothing to do: every service is up to date"
    assert run(["up", *site.args()]) == 0 and container_ids(engine, site.project) == before


def test_colour_change_recreates_only_the_proxy(site: Site, engine: Any) -> None:
    before = container_ids(engine, site.project)
    set_colour(site.dir, "#ff3366")
    assert fast_check(site.dir) == "defer"  # the fast check leaves the change to the full path
    done = site.up()
    after = container_ids(engine, site.project)
    assert after["proxy"] != before["proxy"]
    assert after["web"] == before["web"] and after["db"] == before["db"]
    assert "recreate (mounted files changed)" in done.stdout
    assert b"#ff3366" in get(site.url + "branding/theme.css")[1]


def test_wrong_registry_credential_fails_with_one_line_and_changes_nothing(site: Site, engine: Any,
                                                                         registry_grant: dict[str, str]) -> None:
    before = container_ids(engine, site.project)
    engine.images.remove(f"{WEB_REPO}:1.0", force=True)  # untag only: the running container keeps its image
    wrong = f"wrong-{uuid.uuid4().hex}"
    bad, _ = issue_test_licence(site.dir.parent / "hq", site.project, {**registry_grant, "password": wrong})
    done = site.up("--licence", bad, check=False)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "refused the licence's credentials" in errors[0]
    assert "Traceback" not in done.stderr and wrong not in done.stdout + done.stderr
    assert container_ids(engine, site.project) == before
    again = site.up()  # the good licence pulls the same image back: nothing to recreate
    assert "nothing to do" in again.stdout


def test_unhealthy_version_rolls_back_and_the_old_one_still_serves(site: Site, engine: Any) -> None:
    before = container_ids(engine, site.project)
    compose_before = SiteDir(site.dir).compose.read_text()
    done = kitctl("upgrade", "--to", BROKEN, *site.args(), check=False)
    assert done.returncode == 1
    assert "last log lines of web" in done.stderr and "broken=True" in done.stderr
    assert "rolled back, every service as before" in done.stderr
    assert container_ids(engine, site.project) == before
    assert all(engine.containers.get(cid).status == "running" for cid in before.values())
    status, body = get(site.url)
    assert status == 200 and b"version 1.0" in body
    assert SiteDir(site.dir).compose.read_text() == compose_before
    assert not [c for c in engine.containers.list(all=True) if c.name.startswith(site.project) and "old" in c.name]


def test_status_reports_services_and_the_licence_state_in_the_site_db(site: Site, engine: Any) -> None:
    done = kitctl("status", "--json", *site.args())
    data = json.loads(done.stdout)
    assert {s["service"]: (s["state"], s["health"]) for s in data["services"]} == {
        "db": ("running", "healthy"), "web": ("running", "healthy"), "proxy": ("running", "healthy")}
    assert data["licence"] is None
    db = engine.containers.get(f"{site.project}_db_1")
    sql = ("CREATE TABLE site_state (id int PRIMARY KEY, licence_status text, status_reason text, health json);"
           "CREATE TABLE hq_commands (seq int, type text, payload json, applied_at timestamptz);"
           "INSERT INTO site_state VALUES (1, 'suspended', 'overdue fee', '{}');")
    assert run_in(db, ["psql", "-U", "postgres", "-d", "kit", "-c", sql]).exit_code == 0
    assert json.loads(kitctl("status", "--json", *site.args()).stdout)["licence"] == {
        "status": "suspended", "reason": "overdue fee", "hq": None, "suspended_until": None}
    assert "SUSPENDED (overdue fee)" in kitctl("status", *site.args()).stdout
    logs = kitctl("logs", "web", "--tail", "100", *site.args())
    assert f"serving {site.name}" in logs.stdout
    unknown = kitctl("logs", "nope", *site.args(), check=False)
    assert unknown.returncode == 2 and "unknown service 'nope'" in unknown.stderr and "Traceback" not in unknown.stderr


def test_down_then_up_keeps_the_data(site: Site, engine: Any) -> None:
    db = engine.containers.get(f"{site.project}_db_1")
    assert run_in(db, ["psql", "-U", "postgres", "-d", "kit", "-c",
                       "CREATE TABLE keep (v text); INSERT INTO keep VALUES ('still here')"]).exit_code == 0
    done = kitctl("down", *site.args())
    assert "data volumes kept" in done.stdout
    assert container_ids(engine, site.project) == {}
    site.up()
    db = engine.containers.get(f"{site.project}_db_1")
    assert run_in(db, ["psql", "-U", "postgres", "-d", "kit", "-tAc", "SELECT v FROM keep"]).output.strip() == b"still here"
    assert get(site.url)[0] == 200


def test_backup_then_restore_on_a_fresh_host(site: Site, engine: Any, tmp_path: Path) -> None:
    archive = tmp_path / "site-backup.age"
    identity = tmp_path / "backup-identity.txt"
    kitctl("backup", "-o", str(archive), "--identity", str(identity), *site.args())
    assert oct(archive.stat().st_mode & 0o777) == "0o600"
    assert archive.read_bytes().startswith(b"age-encryption.org/v1\n")
    refused = kitctl("restore", str(archive), "--site-dir", str(tmp_path / "elsewhere"), "--identity", str(identity),
                     check=False)
    assert refused.returncode == 2
    kitctl("down", *site.args("--volumes", "--yes"))
    moved = tmp_path / "fresh"
    fresh = moved / site.project
    kitctl("restore", str(archive), "--site-dir", str(fresh), "--identity", str(identity))
    db = engine.containers.get(f"{site.project}_db_1")
    assert run_in(db, ["psql", "-U", "postgres", "-d", "kit", "-tAc", "SELECT v FROM keep"]).output.strip() == b"still here"
    assert site.name.encode() in get(site.url)[1]
    assert (fresh / "secrets" / "db_password").stat().st_mode & 0o777 == 0o600
    assert (fresh / "secrets").stat().st_mode & 0o777 == 0o700
    site.dir = fresh  # the site lives here now; teardown takes it down


def test_the_same_through_ssh(tmp_path_factory, images, registry_grant, engine: Any) -> None:
    remote = Site(tmp_path_factory.mktemp("ssh-sites"), registry_grant, host=SSH_TARGET)
    remote_dir = f"/tmp/kitctl-e2e-remote/{remote.project}"
    try:
        done = remote.up("--remote-dir", remote_dir)
        assert "up done" in done.stdout
        assert remote.name.encode() in get(remote.url)[1]
        assert Path(remote_dir, "secrets", "db_password").stat().st_mode & 0o777 == 0o600
        before = container_ids(engine, remote.project)
        # the first up's check left an SSH master behind; the no-op goes through it (no handshake, no shell)
        forwarded = _forwarded_engine(SSH_TARGET)
        project = load_project(remote.dir)
        observed = noop.observe_forwarded(forwarded, project, remote_dir)
        assert observed.site_copy_current and noop.decide(remote.dir, project, observed) is not None
        assert "nothing to do" in remote.up("--remote-dir", remote_dir).stdout
        # the no-op check over ssh:// still sees drift: a stopped container, a site copy gone from the host
        engine.containers.get(before["web"]).stop(timeout=5)
        assert "nothing to do" not in remote.up("--remote-dir", remote_dir).stdout
        assert engine.containers.get(before["web"]).status == "running"
        shutil.rmtree(remote_dir)  # the engine's host is this machine
        remote.up("--remote-dir", remote_dir)
        assert Path(remote_dir, "secrets", "db_password").stat().st_mode & 0o777 == 0o600  # copied again
        set_colour(remote.dir, "#123456")
        remote.up("--remote-dir", remote_dir)
        after = container_ids(engine, remote.project)
        assert after["proxy"] != before["proxy"] and after["web"] == before["web"]
        assert b"#123456" in get(remote.url + "branding/theme.css")[1]
        status = json.loads(kitctl("status", "--json", *remote.args()).stdout)
        assert all(s["health"] == "healthy" for s in status["services"])
        down = kitctl("down", *remote.args("--volumes", "--yes", "--remote-dir", remote_dir))
        assert f"closed the persistent SSH connection to {SSH_TARGET}" in down.stdout
        assert ssh_master.forwarded_engine(SSH_TARGET) is None
        assert engine.containers.list(all=True, filters={"label": f"com.docker.compose.project={remote.project}"}) == []
    finally:
        kitctl("down", *remote.args("--volumes", "--yes"), check=False)
        shutil.rmtree(Path(remote_dir).parent, ignore_errors=True)


def _forwarded_engine(target: str, wait: float = 20.0) -> str:
    """The engine socket the SSH master forwards (started in the background by the first command)."""
    deadline = time.monotonic() + wait
    while (found := ssh_master.forwarded_engine(target)) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert found is not None, "no SSH master was left behind"
    return found


# --- the rendered stack: storefront, agent, db, proxy from images/, rendered by `kitctl up` itself ----------

def test_rendered_site_from_one_command(tmp_path: Path, engine: Any, registry_grant: dict[str, str]) -> None:
    """`kitctl up --licence … --name … --logo …` renders, pulls the kit's images with the licence, serves the shop."""
    require((ROOT / "storefront" / "__main__.py").is_file() and (ROOT / "agent" / "__main__.py").is_file(),
            "the storefront and agent apps are not in this checkout yet")
    from kitcore import __version__
    from tests.infra.fixtures import kit_images

    services = ["db", "proxy", "storefront", "agent"]
    kit_images()  # this tree's images, built once a run
    auth = {"username": registry_grant["username"], "password": registry_grant["password"]}
    for service in services:
        engine.images.get(f"kitctl/{service}:{__version__}").tag(f"{REGISTRY}/kitctl/{service}", __version__)
        for line in engine.api.push(f"{REGISTRY}/kitctl/{service}", tag=__version__, auth_config=auth,
                                    stream=True, decode=True):
            assert "error" not in line, line
    project = f"shop{uuid.uuid4().hex[:6]}"
    token, jwks = issue_test_licence(tmp_path / "hq", project, registry_grant)
    (tmp_path / "licence.jwt").write_text(token)
    (tmp_path / "hq-keys.json").write_text(json.dumps(jwks))
    (tmp_path / "logo.png").write_bytes(LOGO_PNG)
    site_dir, http_port = tmp_path / project, free_port()
    args = ["--licence", f"@{tmp_path / 'licence.jwt'}", "--hq-keys", str(tmp_path / "hq-keys.json"),
            "--name", "星辰游戏", "--domain", "localhost", "--logo", str(tmp_path / "logo.png"),
            "--site-dir", str(site_dir), "--http-port", str(http_port), "--https-port", str(free_port()),
            "--metrics-port", str(free_port()), "--tls", "off", "--data-dir", str(tmp_path / "data")]
    try:
        first = kitctl("up", *args, timeout=900)
        assert "first admin created" in first.stdout and "shown only this once" in first.stdout
        # --data-dir: the volumes live in <data dir>/<volume>, created by `up`, the database's files inside
        assert (tmp_path / "data" / "db-data" / "pgdata" / "PG_VERSION").is_file()
        # the rendered Caddyfile serves the site's domain: ask for it by name
        status, body = get(f"http://127.0.0.1:{http_port}/", host="localhost")
        assert status == 200 and "<title>星辰游戏</title>" in body.decode()
        status, body = get(f"http://127.0.0.1:{http_port}/")  # and on the address `up` prints
        assert status == 200 and "<title>星辰游戏</title>" in body.decode()
        assert get(f"http://127.0.0.1:{http_port}/branding/logo.png", host="localhost") == (200, LOGO_PNG)
        # the stylesheet pages link, by its versioned name, from the proxy image itself: cached for good
        css = re.search(r'href="(/static/app\.[0-9a-f]{12}\.css)"', body.decode())
        assert css, body.decode()[:400]
        with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{http_port}{css.group(1)}"),
                                    timeout=10) as answer:
            assert answer.status == 200 and answer.headers["Cache-Control"] == "public, max-age=31536000, immutable"
            assert answer.read() == (ROOT / "storefront" / "static" / "app.css").read_bytes()
        again = kitctl("up", *args)
        assert "nothing to do" in again.stdout and "first admin" not in again.stdout
        # kitctl's gate ran each healthcheck itself; the engine's own probe agrees within one interval (5 s)
        deadline = time.monotonic() + 8
        while True:
            data = json.loads(kitctl("status", "--json", "--site-dir", str(site_dir)).stdout)
            if all(s["health"] == "healthy" for s in data["services"]) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert {s["service"] for s in data["services"]} == {"db", "storefront", "agent", "proxy"}
        assert all(s["health"] == "healthy" for s in data["services"]), data["services"]
        licence = data["licence"]  # as the agent recorded it in site_state, with its link to HQ
        assert (licence["status"], licence["reason"]) == ("active", "")
        assert licence["hq"] is None or licence["hq"]["state"] in ("ok", "unreachable", "refused")
        for service, cid in container_ids(engine, f"kit-{project}").items():  # healthy with no capability to spare
            host = engine.containers.get(cid).attrs["HostConfig"]
            assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges:true"], service
            assert host["ReadonlyRootfs"] is (service == "proxy"), service
        before = container_ids(engine, f"kit-{project}")  # a rendered site is named by its site id
        # one flag: every other input (ports, licence, logo, data dir) is what the site directory recorded; buyers
        # asking all along see no failed request: the proxy stays, the storefront is replaced start-first
        with SteadyLoad(http_port, clients=4) as load:
            time.sleep(0.5)
            recoloured = kitctl("up", "--site-dir", str(site_dir), "--primary-color", "#ff3366")
            time.sleep(0.5)
        assert load.sent > 50 and load.failed == 0, (load.sent, load.when)
        after = container_ids(engine, f"kit-{project}")
        assert after["db"] == before["db"] and after["proxy"] == before["proxy"]
        assert after["agent"] == before["agent"]  # the agent has no branding input (agent.json)
        assert after["storefront"] != before["storefront"]
        assert "first admin" not in recoloured.stdout
        assert b"#ff3366" in get(f"http://127.0.0.1:{http_port}/branding/theme.css", host="localhost")[1].lower()
        # the database is lost (volume and its data directory); the marker on the host survives
        kitctl("down", "--site-dir", str(site_dir), "--volumes", "--yes")
        shutil.rmtree(tmp_path / "data" / "db-data")
        assert SiteDir(site_dir).admin_created.is_file()
        recovered = kitctl("up", "--site-dir", str(site_dir))
        assert "first admin created" in recovered.stdout and recovered.stdout.count("shown only this once") == 1
        assert "first admin" not in kitctl("up", "--site-dir", str(site_dir)).stdout
        # staff from the host, inside the running storefront
        made = kitctl("admin", "create", "ops", "--role", "operator", "--site-dir", str(site_dir))
        assert "shown only this once" in made.stdout
        reset = kitctl("admin", "reset-password", "ops", "--site-dir", str(site_dir)).stdout
        assert "shown only this once" in reset and reset.splitlines()[0] != made.stdout.splitlines()[0]
        kitctl("admin", "disable", "ops", "--site-dir", str(site_dir))
        staff = json.loads(kitctl("admin", "list", "--json", "--site-dir", str(site_dir)).stdout)
        assert {(s["username"], s["role"], s["disabled"]) for s in staff} == {("admin", "admin", False),
                                                                             ("ops", "operator", True)}
        refused = kitctl("admin", "disable", "admin", "--site-dir", str(site_dir), check=False)
        assert refused.returncode == 2 and "last enabled admin" in refused.stderr
    finally:
        kitctl("down", "--site-dir", str(site_dir), "--volumes", "--yes", check=False)

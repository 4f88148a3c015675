"""The host service (issue 19): it acts only on a verified upgrade command for its own site, once, runs the gated
upgrade, and reports the outcome to HQ until HQ heard it. The engine and the upgrade itself are faked here (the
boundary); tests/e2e/test_rollout_stack.py runs it for real."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from kitcore.errors import KitError
from kitcore.licence import jws
from kitcore.licence.keys import HQKeyStore
from kitcore.licence.token import issue_licence
from kitcore.sitedir import SiteDir
from kitctl.deploy.steps import StepFailed
from kitctl.service import handled as state
from kitctl.service import host
from kitctl.service.host import HostService, ServiceOptions

SITE = "xingchen"
COMPOSE = """name: kit-xingchen
services:
  db:
    image: kitctl/db:0.1.0
  agent:
    image: kitctl/agent:0.1.0
  storefront:
    image: 127.0.0.1:5000/kitctl/storefront:0.1.0
  cache:
    image: redis:7
"""


class Rig:
    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.store = HQKeyStore(tmp_path / "hq")
        self.store.init()
        self.site_dir = tmp_path / "site"
        site = SiteDir(self.site_dir)
        site.secrets.mkdir(parents=True)
        site.compose.write_text(COMPOSE)
        site.hq_keys.write_text(json.dumps(self.store.jwks()))
        site.licence_token.write_text(issue_licence(self.store, SITE, "pro", ["game"], 30, "http://hq.invalid:8600"))
        self.stored: str | None = None  # the newest upgrade command in the site database
        self.upgrades: list[dict[str, str]] = []  # what `up` was asked to run
        self.fail_with: Exception | None = None
        self.reports: list[dict[str, str]] = []
        self.hq_down = False
        self.seq = 0
        monkeypatch.setattr(host, "newest_upgrade", lambda client, project: self.stored)
        monkeypatch.setattr("kitctl.deploy.up.up", self._up)
        monkeypatch.setattr("kitctl.deploy.drift.stored_licence_token", lambda client, project: None)
        self.service = HostService(ServiceOptions(self.site_dir, interval=0.01), client=object(), send=self._send)

    def _up(self, options: Any, reporter: Any) -> None:
        self.upgrades.append(dict(options.image_overrides))
        if self.fail_with is not None:
            raise self.fail_with

    def _send(self, url: str, token: str, body: dict[str, str]) -> None:
        if self.hq_down:
            raise KitError("HQ not reachable: ConnectError")
        assert url == "http://hq.invalid:8600" and token.count(".") == 2
        self.reports.append(body)

    def command(self, version: Any, site: str = SITE, type_: str = "upgrade", seq: int | None = None,
                store: HQKeyStore | None = None, exp_in: int = 600) -> str:
        self.seq = seq or self.seq + 1
        now = int(time.time())
        self.stored = jws.sign({"id": str(uuid.uuid4()), "seq": self.seq, "type": type_, "site": site, "iat": now,
                                "exp": now + exp_in, "payload": {"version": version}}, store or self.store,
                               "kitctl-command+jwt")
        return self.stored

    def images(self) -> str:
        return SiteDir(self.site_dir).compose.read_text()


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Rig:
    return Rig(tmp_path, monkeypatch)


def test_an_upgrade_runs_once_pins_the_version_and_is_reported(rig: Rig) -> None:
    assert rig.service.once() is None and rig.upgrades == []  # nothing asked yet
    token = rig.command("0.2.0")
    handled = rig.service.once()
    assert rig.upgrades == [{"db": "kitctl/db:0.2.0", "agent": "kitctl/agent:0.2.0",
                             "storefront": "127.0.0.1:5000/kitctl/storefront:0.2.0"}]  # redis is not the kit's
    assert "kitctl/agent:0.2.0" in rig.images() and "redis:7" in rig.images()  # compose.yaml pins it
    assert rig.reports == [{"command_id": handled.command_id, "version": "0.2.0", "outcome": "upgraded",
                            "detail": "", "previous": "0.1.0", "window": None, "auto_upgrade": True}]
    assert (state.state_path(rig.site_dir).stat().st_mode & 0o777) == 0o600
    rig.stored = token  # the same command again (a replay, or the next round): nothing more happens
    rig.service.once()
    assert len(rig.upgrades) == 1 and len(rig.reports) == 1


def test_a_failed_upgrade_reports_the_rollback_and_keeps_the_old_version(rig: Rig) -> None:
    rig.fail_with = StepFailed("storefront", "not healthy after 30s")
    rig.command("0.3.0-broken")
    rig.service.once()
    [report] = rig.reports
    assert (report["outcome"], report["version"]) == ("rolled_back", "0.1.0")
    assert report["detail"].startswith("storefront: not healthy after 30s; nothing had changed")
    assert "kitctl/agent:0.1.0" in rig.images()  # compose.yaml unchanged


def test_an_outcome_hq_did_not_hear_is_sent_again_and_only_once_heard(rig: Rig) -> None:
    rig.hq_down = True
    rig.command("0.2.0")
    rig.service.once()
    assert rig.reports == [] and state.load(rig.site_dir).reported is False  # type: ignore[union-attr]
    rig.service.once()  # still down: still not heard, and the upgrade is not run again
    assert len(rig.upgrades) == 1
    rig.hq_down = False
    rig.service.once()
    rig.service.once()
    assert [r["outcome"] for r in rig.reports] == ["upgraded"]


@pytest.mark.parametrize("bad", ["another site", "another key", "not an upgrade", "bad version", "garbage"])
def test_a_command_that_does_not_verify_for_this_site_changes_nothing(rig: Rig, tmp_path: Path, bad: str) -> None:
    other = HQKeyStore(tmp_path / "other")
    other.init()
    {"another site": lambda: rig.command("0.2.0", site="other-site"),
     "another key": lambda: rig.command("0.2.0", store=other),
     "not an upgrade": lambda: rig.command("0.2.0", type_="sync_now"),
     "bad version": lambda: rig.command("0.2.0 && rm -rf /"),
     "garbage": lambda: setattr(rig, "stored", "a.b.c")}[bad]()
    before = rig.images()
    rig.service.once()
    assert (rig.upgrades, rig.reports, rig.images()) == ([], [], before)
    assert not state.state_path(rig.site_dir).exists()


def test_at_its_first_start_an_expired_command_is_set_aside_not_run(rig: Rig) -> None:
    rig.command("0.0.9", exp_in=-10)  # answered long ago (or HQ sends a fresh one)
    rig.service.once()
    assert rig.upgrades == [] and state.load(rig.site_dir).seq == 1  # type: ignore[union-attr]
    rig.command("0.2.0")  # a newer one runs
    rig.service.once()
    assert len(rig.upgrades) == 1


def test_already_on_the_version_reports_upgraded_without_a_deploy(rig: Rig) -> None:
    rig.command("0.1.0")
    rig.service.once()
    assert rig.upgrades == [] and rig.reports[0]["outcome"] == "upgraded"


def test_run_stops_when_asked(rig: Rig) -> None:
    import threading

    thread = threading.Thread(target=rig.service.run)
    thread.start()
    rig.command("0.2.0")
    deadline = time.monotonic() + 10
    while not rig.reports and time.monotonic() < deadline:
        time.sleep(0.01)
    rig.service.stop.set()
    thread.join(5)
    assert not thread.is_alive() and len(rig.reports) == 1

"""`kitctl service run`: pick up HQ's upgrade commands from the agent, run the gated upgrade, report back.

Every `interval` seconds: read the newest upgrade command the agent stored
(`pickup`), act only on one with a sequence above the last handled (a replay
changes nothing), verified against the site's pinned keys. The upgrade is
`kitctl upgrade`'s own path: the kit's images at the new tag, started in
order, health-gated, rolled back on failure; compose.yaml pins the version on
success. The outcome goes to HQ (`POST /v1/upgrade-report`, the site's licence
as credential) and is sent again until HQ has heard it.

The licensee's say (`kitctl service install --window 02:00-05:00 --timezone Asia/Shanghai`,
`--no-auto-upgrade`): a command received outside the window is kept in the service's note (it
survives a restart, and its token may expire meanwhile) and run when the window opens; HQ hears
"waiting" with the window. With automatic upgrades off a command is answered `opted_out` and not run.
Every report carries both settings, and a change of them is sent on its own, so HQ's fleet page
shows who opted out before any rollout asks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from kitcore.errors import KitError
from kitcore.images import KIT_IMAGE
from kitctl.service import handled as state
from kitctl.service.pickup import CommandNotTrusted, UpgradeCommand, newest_upgrade, site_keys, verified_upgrade

if TYPE_CHECKING:
    import docker

    from kitcore.upgrade_window import Window

    from kitctl.deploy.compose import Project

log = logging.getLogger("kitctl.service")
DETAIL_MAX = 300


@dataclass
class ServiceOptions:
    site_dir: Path
    host: str | None = None  # the Docker engine (default: the local socket)
    hq_url: str | None = None  # where the host reaches HQ (default: the licence's hq_url)
    interval: float = 5.0
    timeout: float = 180.0  # longest wait for one service to turn healthy
    window: "Window | None" = None  # upgrades run only inside it; None: any time
    auto_upgrade: bool = True  # False: the licensee opted out; commands are answered, not run
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc))

    def settings(self) -> dict[str, Any]:
        """What HQ is told about this host with every report."""
        return {"window": str(self.window) if self.window else None, "auto_upgrade": self.auto_upgrade}


def settings_text(settings: dict[str, Any]) -> str:
    return f"{settings['window'] or 'any time'}|{'auto' if settings['auto_upgrade'] else 'opted out'}"


DEFAULT_SETTINGS = settings_text({"window": None, "auto_upgrade": True})  # what HQ assumes of a host unheard


def running_version(project: "Project") -> str:
    """The tag most of the kit's services run (they share one after any `up` or `upgrade`)."""
    tags = Counter(m["tag"] for svc in project.services.values() if (m := KIT_IMAGE.match(svc.image)))
    return tags.most_common(1)[0][0] if tags else "unknown"


class HostService:
    def __init__(self, options: ServiceOptions, client: "docker.DockerClient | None" = None,
                 send: "Callable[[str, str, dict[str, Any]], None] | None" = None) -> None:
        from kitctl.engine import connect

        self.options = options
        self.client = client if client is not None else connect(options.host)
        self.send = send or post_report
        self.stop = threading.Event()

    def run(self) -> None:
        """Until stopped: one round every `interval` seconds; a failed round is logged and the next retries."""
        while not self.stop.is_set():
            try:
                self.once()
            except KitError as exc:
                log.warning("%s", exc)
            self.stop.wait(self.options.interval)

    def once(self) -> state.Handled | None:
        """One round: tell HQ what it has not heard, take a new upgrade command if there is one, and run the
        one in hand when the window allows (now, or held since it came outside the window)."""
        from kitctl.deploy.compose import load_project

        site_dir = self.options.site_dir
        handled = state.load(site_dir)
        project = load_project(site_dir)
        if handled is not None and not handled.reported:
            self._report(project, handled)
        handled = self._announce(project, handled)
        handled = self._take(project, handled)
        if handled is None or not handled.pending:
            return handled
        if not self.options.auto_upgrade:
            running = running_version(project)
            return self._finish(handled, state.Handled(
                handled.pending_seq, handled.pending_id, running, "opted_out",
                "the licensee opted out of automatic upgrades", reported=False, previous=running), project)
        if self.options.window is not None and not self.options.window.is_open(self.options.clock()):
            if not handled.pending_reported:
                self._report_waiting(project, handled)
            return handled
        return self._finish(handled, self._upgrade(project, UpgradeCommand(
            handled.pending_id, handled.pending_seq, handled.pending_version, 0)), project)

    def _take(self, project: "Project", handled: state.Handled | None) -> state.Handled | None:
        """The newest verified command, if new, held in the note (pending) until `once` may act on it."""
        site_dir = self.options.site_dir
        token = newest_upgrade(self.client, project)
        if token is None:
            return handled
        try:
            command = verified_upgrade(token, site_keys(site_dir), _site_id(site_dir))
        except CommandNotTrusted as exc:
            log.warning("%s", exc)
            return handled
        if handled is not None and command.seq <= max(handled.seq, handled.pending_seq):
            return handled  # done already, held already (or set aside at the first start)
        if handled is None and command.exp < time.time():
            # first start with an old command waiting: it was answered long ago, or HQ will send a fresh one
            handled = state.Handled(seq=command.seq, command_id=command.id, version=running_version(project),
                                    announced=None)
            state.save(site_dir, handled)
            return handled
        handled = handled or state.Handled()
        handled.pending_seq, handled.pending_id, handled.pending_version = command.seq, command.id, command.version
        handled.pending_reported = False
        state.save(site_dir, handled)
        return handled

    def _finish(self, handled: state.Handled, done: state.Handled, project: "Project") -> state.Handled:
        """The held command answered: its outcome replaces the note (kept until HQ heard it)."""
        done.announced = handled.announced
        state.save(self.options.site_dir, done)
        self._report(project, done)
        return done

    def _announce(self, project: "Project", handled: state.Handled | None) -> state.Handled | None:
        """Send the host's settings on their own when HQ has not heard them (they changed since)."""
        said = settings_text(self.options.settings())
        heard = handled.announced if handled is not None else None
        if said == (heard or DEFAULT_SETTINGS):
            return handled
        if not self._tell(project, dict(self.options.settings()), "settings"):
            return handled
        handled = handled or state.Handled()
        handled.announced = said
        state.save(self.options.site_dir, handled)
        return handled

    def _report_waiting(self, project: "Project", handled: state.Handled) -> None:
        window = self.options.window
        assert window is not None
        opens = window.next_open(self.options.clock()).isoformat(timespec="minutes")
        running = running_version(project)
        body = {"command_id": handled.pending_id, "version": running, "outcome": "waiting", "previous": running,
                "detail": f"waiting for window {window} (opens {opens})", **self.options.settings()}
        log.info("upgrade command %s to %s waits for the window %s", handled.pending_seq, handled.pending_version,
                 window)
        if not self._tell(project, body, f"'waiting for window' of command {handled.pending_seq}"):
            return
        handled.pending_reported = True
        state.save(self.options.site_dir, handled)

    def _upgrade(self, project: "Project", command: UpgradeCommand) -> state.Handled:
        """`kitctl upgrade --to` as a function: the outcome, never an exception for a failed upgrade."""
        from kitctl.deploy.report import RichReporter
        from kitctl.deploy.rollback import describe
        from kitctl.deploy.steps import StepFailed
        from kitctl.deploy.up import UpOptions, up
        from kitctl.deploy.upgrade import record_images, upgraded_images

        before = running_version(project)

        def outcome(result: str, version: str, detail: str = "") -> state.Handled:
            return state.Handled(command.seq, command.id, version, result, detail[:DETAIL_MAX], reported=False,
                                 previous=before)

        images = upgraded_images(project, command.version)
        if not images:
            return outcome("upgraded", command.version, "already running it")
        log.info("upgrading %s from %s to %s (HQ command %s)", project.name, before, command.version, command.seq)
        options = UpOptions(site_dir=self.options.site_dir, host=self.options.host, timeout=self.options.timeout,
                            image_overrides=images)
        try:
            up(options, RichReporter())
        except StepFailed as exc:
            return outcome("rolled_back", before, f"{exc}; {describe(exc.after)}")
        except KitError as exc:  # refused before anything changed (an image that is not there, a bad setting)
            return outcome("rolled_back", before, str(exc))
        record_images(project.config_file, project, images)
        return outcome("upgraded", command.version)

    def _report(self, project: "Project", handled: state.Handled) -> None:
        """Tell HQ; kept as unreported (and sent again next round) when HQ cannot be reached."""
        body = {"command_id": handled.command_id, "version": handled.version, "outcome": handled.outcome,
                "detail": handled.detail, **self.options.settings()}
        if handled.previous:
            body["previous"] = handled.previous
        if not self._tell(project, body, f"outcome of upgrade command {handled.seq}"):
            return
        handled.reported = True
        handled.announced = settings_text(self.options.settings())
        state.save(self.options.site_dir, handled)
        log.info("reported upgrade command %s: %s at %s", handled.seq, handled.outcome, handled.version)

    def _tell(self, project: "Project", body: dict[str, Any], what: str) -> bool:
        """POST a report to HQ; False (logged, to be sent again next round) when HQ cannot be reached."""
        try:
            url, token = self._hq(project)
            self.send(url, token, body)
        except KitError as exc:
            log.warning("%s not reported yet: %s", what, exc)
            return False
        return True

    def _hq(self, project: "Project") -> tuple[str, str]:
        """HQ's URL and the newest licence token of the site (the one HQ sent the agent, if newer)."""
        from kitctl.deploy.drift import effective_licence, site_token, stored_licence_token

        site_dir = self.options.site_dir
        stored = stored_licence_token(self.client, project)
        claims, source = effective_licence(site_dir, stored, None)
        token = stored if source == "agent" and stored else site_token(site_dir)
        return (self.options.hq_url or claims.hq_url).rstrip("/"), token


def _site_id(site_dir: Path) -> str:
    from kitctl.deploy.drift import site_token
    from kitcore.licence.token import verify_licence

    return verify_licence(site_token(site_dir), site_keys(site_dir)).claims.sub


def post_report(hq_url: str, token: str, body: dict[str, Any]) -> None:
    """POST the outcome; KitError unless HQ took it (a 404 is final: HQ knows no such command)."""
    import httpx

    try:
        resp = httpx.post(f"{hq_url}/v1/upgrade-report", json=body, timeout=15,
                          headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        raise KitError(f"HQ not reachable: {type(exc).__name__}") from None
    if resp.status_code == 404:
        log.warning("HQ knows no upgrade command %s: not reported", body.get("command_id"))
        return
    if resp.status_code != 200:
        raise KitError(f"HQ answered {resp.status_code} to the upgrade report")

"""The licensee's maintenance window and opt-out on the host (issue 19): literal times at the window's edges,
across midnight, in other time zones and over a DST change; an upgrade command received outside the window
waits (across a restart of the service, after its token expired) and HQ hears "waiting"; an opted-out host
runs nothing and says so."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from kitcore.errors import InvalidInput
from kitcore.upgrade_window import parse_window, window_from_text
from kitctl.service import handled as state
from kitctl.service.host import HostService, ServiceOptions
from tests.service.test_host_service import Rig


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


@pytest.mark.parametrize("moment, open_", [
    ("2031-05-01T17:59:59", False),  # 01:59:59 in Shanghai (UTC+8)
    ("2031-05-01T18:00:00", True),  # 02:00:00: the start is inside
    ("2031-05-01T20:59:59", True),  # 04:59:59
    ("2031-05-01T21:00:00", False),  # 05:00:00: the end is outside
    ("2031-05-01T02:00:00", False),  # 10:00 in Shanghai, 02:00 UTC: the zone counts, not UTC
])
def test_a_window_in_shanghai_opens_at_its_start_and_closes_at_its_end(moment: str, open_: bool) -> None:
    assert parse_window("02:00-05:00", "Asia/Shanghai").is_open(utc(moment)) is open_


@pytest.mark.parametrize("moment, open_", [
    ("2031-07-10T20:59:00", False),  # 22:59 in Paris (UTC+2 in summer)
    ("2031-07-10T21:00:00", True),  # 23:00
    ("2031-07-10T22:30:00", True),  # 00:30 the next day
    ("2031-07-10T23:59:59", True),  # 01:59:59
    ("2031-07-11T00:00:00", False),  # 02:00
    ("2031-07-11T10:00:00", False),  # noon
    ("2031-01-10T21:59:00", False),  # 22:59 in winter (UTC+1)
    ("2031-01-10T22:00:00", True),  # 23:00 in winter: the same wall clock, another UTC hour
])
def test_a_window_across_midnight_runs_from_its_start_to_its_end_the_next_day(moment: str, open_: bool) -> None:
    assert parse_window("23:00-02:00", "Europe/Paris").is_open(utc(moment)) is open_


def test_the_next_opening_is_named_in_the_zone_and_a_dst_gap_skips_to_the_next_day() -> None:
    shanghai = parse_window("02:00-05:00", "Asia/Shanghai")
    assert shanghai.next_open(utc("2031-05-01T10:00:00")).isoformat() == "2031-05-02T02:00:00+08:00"
    assert shanghai.next_open(utc("2031-05-01T21:00:00")).isoformat() == "2031-05-03T02:00:00+08:00"  # 05:00
    assert shanghai.next_open(utc("2031-05-01T17:00:00")).isoformat() == "2031-05-02T02:00:00+08:00"  # 01:00
    assert shanghai.next_open(utc("2031-05-01T19:00:00")) == utc("2031-05-01T19:00:00")  # open: now
    # Paris skips 02:00-03:00 on 30 March 2031: a 02:00-03:00 window does not open that night
    gap = parse_window("02:00-03:00", "Europe/Paris")
    assert gap.next_open(utc("2031-03-29T23:00:00")).isoformat() == "2031-03-31T02:00:00+02:00"
    assert str(window_from_text("23:00-02:00 Europe/Paris")) == "23:00-02:00 Europe/Paris"


@pytest.mark.parametrize("hours, zone, said", [
    ("2:00-5:00", "UTC", "HH:MM-HH:MM"), ("02:00-24:00", "UTC", "HH:MM-HH:MM"), ("02:00 - 05:00", "UTC", "HH:MM"),
    ("05:00-05:00", "UTC", "the same"), ("02:00-05:00", "Mars/Base", "not known"),
    ("02:00-05:00", "Asia/../etc", "not a time zone"), ("02:00-05:00", "", "not a time zone"),
])
def test_a_bad_window_is_refused_in_one_line(hours: str, zone: str, said: str) -> None:
    with pytest.raises(InvalidInput, match=said):
        parse_window(hours, zone)


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Rig:
    return Rig(tmp_path, monkeypatch)


class Clock:
    def __init__(self, moment: str) -> None:
        self.now = utc(moment)

    def __call__(self) -> datetime:
        return self.now


def windowed(rig: Rig, clock: Clock, **options) -> HostService:
    return HostService(ServiceOptions(rig.site_dir, interval=0.01, clock=clock, **options),
                       client=object(), send=rig._send)


def test_a_command_outside_the_window_waits_across_a_restart_and_runs_when_it_opens(rig: Rig) -> None:
    clock = Clock("2031-05-01T10:00:00")  # 18:00 in Shanghai
    service = windowed(rig, clock, window=parse_window("02:00-05:00", "Asia/Shanghai"))
    service.once()
    assert rig.reports == [{"window": "02:00-05:00 Asia/Shanghai", "auto_upgrade": True}]  # HQ hears it at once
    rig.command("0.2.0")
    held = service.once()
    assert rig.upgrades == [] and held is not None and held.pending
    waiting = rig.reports[-1]
    assert (waiting["outcome"], waiting["version"], waiting["previous"]) == ("waiting", "0.1.0", "0.1.0")
    assert waiting["detail"] == "waiting for window 02:00-05:00 Asia/Shanghai (opens 2031-05-02T02:00+08:00)"
    service.once()
    assert len(rig.reports) == 2  # said once

    # the service restarts; meanwhile the stored token expired (HQ's TTL): the note still holds the command
    command_id = held.pending_id
    rig.command("0.2.0", seq=rig.seq, exp_in=-10)
    clock.now = utc("2031-05-01T17:59:59")  # 01:59:59 in Shanghai
    restarted = windowed(rig, clock, window=parse_window("02:00-05:00", "Asia/Shanghai"))
    restarted.once()
    assert rig.upgrades == [] and len(rig.reports) == 2
    clock.now = utc("2031-05-01T18:00:00")  # 02:00: the window opens
    done = restarted.once()
    assert len(rig.upgrades) == 1 and "kitctl/agent:0.2.0" in rig.images()
    report = rig.reports[-1]
    assert (report["command_id"], report["outcome"], report["version"], report["previous"]) == \
        (command_id, "upgraded", "0.2.0", "0.1.0")
    assert done is not None and not done.pending
    restarted.once()
    assert len(rig.upgrades) == 1  # once


def test_inside_the_window_a_command_runs_at_once_and_a_newer_one_replaces_a_held_one(rig: Rig) -> None:
    clock = Clock("2031-07-10T21:30:00")  # 23:30 in Paris: inside 23:00-02:00
    service = windowed(rig, clock, window=parse_window("23:00-02:00", "Europe/Paris"))
    rig.command("0.2.0")
    service.once()
    assert len(rig.upgrades) == 1 and [r.get("outcome") for r in rig.reports] == [None, "upgraded"]
    clock.now = utc("2031-07-11T00:00:00")  # 02:00: closed
    rig.command("0.3.0")
    service.once()
    rig.command("0.4.0")  # HQ changed its mind before the window opened (a rollback, say)
    service.once()
    assert len(rig.upgrades) == 1 and [r["outcome"] for r in rig.reports[-2:]] == ["waiting", "waiting"]
    clock.now = utc("2031-07-11T21:00:00")
    service.once()
    assert rig.upgrades[-1]["agent"] == "kitctl/agent:0.4.0" and len(rig.upgrades) == 2  # 0.3.0 never ran


def test_a_waiting_hq_did_not_hear_is_sent_again(rig: Rig) -> None:
    clock = Clock("2031-05-01T10:00:00")
    service = windowed(rig, clock, window=parse_window("02:00-05:00", "Asia/Shanghai"))
    rig.hq_down = True
    rig.command("0.2.0")
    service.once()
    assert rig.reports == [] and state.load(rig.site_dir).pending_reported is False  # type: ignore[union-attr]
    rig.hq_down = False
    service.once()
    assert [r.get("outcome") for r in rig.reports] == [None, "waiting"]


def test_an_opted_out_host_runs_nothing_and_tells_hq_before_and_when_asked(rig: Rig) -> None:
    service = windowed(rig, Clock("2031-05-01T10:00:00"), auto_upgrade=False)
    service.once()
    service.once()
    assert rig.reports == [{"window": None, "auto_upgrade": False}]  # before any rollout, and once
    rig.command("0.2.0")
    service.once()
    assert rig.upgrades == [] and "kitctl/agent:0.1.0" in rig.images()
    answer = rig.reports[-1]
    assert (answer["outcome"], answer["version"], answer["auto_upgrade"]) == ("opted_out", "0.1.0", False)
    # the licensee opts back in: HQ hears it; the answered command is not run after all
    back_in = windowed(rig, Clock("2031-05-01T10:00:00"))
    back_in.once()
    assert rig.reports[-1] == {"window": None, "auto_upgrade": True} and rig.upgrades == []


def test_a_held_command_is_answered_opted_out_when_the_licensee_opts_out_meanwhile(rig: Rig) -> None:
    clock = Clock("2031-05-01T10:00:00")
    windowed(rig, clock, window=parse_window("02:00-05:00", "Asia/Shanghai")).once()
    rig.command("0.2.0")
    windowed(rig, clock, window=parse_window("02:00-05:00", "Asia/Shanghai")).once()
    clock.now = utc("2031-05-01T18:30:00")  # inside, but the licensee reinstalled with --no-auto-upgrade
    windowed(rig, clock, window=parse_window("02:00-05:00", "Asia/Shanghai"), auto_upgrade=False).once()
    assert rig.upgrades == [] and rig.reports[-1]["outcome"] == "opted_out"


def test_service_run_takes_the_window_and_the_opt_out_from_its_command_line(rig: Rig, monkeypatch) -> None:
    from kitctl.cli import run
    from kitctl.service import host

    monkeypatch.setattr("kitctl.engine.connect", lambda _host=None: object())
    monkeypatch.setattr(host, "post_report", rig._send)
    assert run(["service", "run", "--site-dir", str(rig.site_dir), "--once", "--window", "23:00-02:00",
                "--timezone", "Europe/Paris", "--no-auto-upgrade"]) == 0
    assert rig.reports == [{"window": "23:00-02:00 Europe/Paris", "auto_upgrade": False}]
    assert run(["service", "run", "--site-dir", str(rig.site_dir), "--once", "--window", "25:00-02:00"]) == 2

"""A site's maintenance window: the daily hours, in the licensee's time zone, when HQ's upgrades may run.

Written `02:00-05:00 Asia/Shanghai` (start inclusive, end exclusive, local wall time). A window whose
end is before its start crosses midnight (`23:00-02:00`: from 23:00 to 02:00 the next day). The host
service (kitctl.service.host) holds an upgrade command received outside it until it opens; HQ shows
the same text on the fleet and rollout pages. Shared by both, so both read it the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kitcore.errors import InvalidInput

HOURS = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]"
ZONE = r"[A-Za-z][A-Za-z0-9_+-]{0,30}(?:/[A-Za-z0-9_+-]{1,30}){0,2}"
WINDOW_PATTERN = rf"^{HOURS}-{HOURS} {ZONE}$"
_HOURS_RE = re.compile(rf"^({HOURS})-({HOURS})$")
_ZONE_RE = re.compile(rf"^{ZONE}$")


@dataclass(frozen=True)
class Window:
    start: time
    end: time
    zone: str

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M} {self.zone}"

    def _tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    def is_open(self, now: datetime) -> bool:
        """Whether the aware moment `now` falls inside the window, on the licensee's wall clock."""
        local = _wall(now, self._tz()).time().replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end  # across midnight

    def next_open(self, now: datetime) -> datetime:
        """The first moment at or after `now` when the window is open (an aware datetime in its zone)."""
        if self.is_open(now):
            return now
        moment = now.astimezone(timezone.utc)
        day = _wall(now, self._tz()).date()
        for offset in (0, 1, 2):  # a DST gap can swallow one day's opening
            candidate = datetime.combine(day + timedelta(days=offset), self.start, tzinfo=self._tz())
            at = candidate.astimezone(timezone.utc)  # a wall time in a DST gap lands outside the window here
            if at > moment and self.is_open(at):
                return at.astimezone(self._tz())
        raise AssertionError("a daily window opens within two days")  # pragma: no cover


def _wall(moment: datetime, tz: ZoneInfo) -> datetime:
    """The licensee's wall clock at `moment`, through UTC (astimezone to the same tzinfo would keep a wall
    time that does not exist, in a DST gap)."""
    return moment.astimezone(timezone.utc).astimezone(tz)


def parse_window(hours: str, zone: str = "UTC") -> Window:
    """`HH:MM-HH:MM` and an IANA time zone; InvalidInput naming what is wrong."""
    found = _HOURS_RE.match(hours.strip())
    if not found:
        raise InvalidInput(f"window {hours[:40]!r}: give the hours as HH:MM-HH:MM, e.g. 02:00-05:00")
    start, end = (time.fromisoformat(part) for part in found.groups())
    if start == end:
        raise InvalidInput(f"window {hours[:40]!r}: start and end are the same; leave --window out to allow any time")
    if not _ZONE_RE.match(zone):
        raise InvalidInput(f"time zone {zone[:40]!r} is not a time zone name like Asia/Shanghai")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"time zone {zone[:40]!r} is not known on this host") from None
    return Window(start, end, zone)


def window_from_text(text: str) -> Window:
    """The window back from its written form (`str(window)`)."""
    hours, _, zone = text.partition(" ")
    return parse_window(hours, zone or "UTC")

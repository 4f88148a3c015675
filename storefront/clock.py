"""Times as the site's people read them: in the site's time zone (site.json `time_zone`), not UTC.

The database keeps UTC (SQLite hands it back naive); every page shows the
site's zone and names it, and "today" on the overview is the site's day.
"""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from zoneinfo import ZoneInfo

SHOWN = "%Y-%m-%d %H:%M"


def as_utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def local(value: datetime | None, zone: str) -> str:
    """`2026-12-07 17:10 CST`: the time in the site's zone with the zone's short name; "" for no time."""
    if value is None:
        return ""
    here = as_utc(value).astimezone(ZoneInfo(zone))
    return here.strftime(SHOWN) + " " + (here.tzname() or zone)


def local_unix(seconds: int | float | None, zone: str) -> str:
    return "" if not seconds else local(datetime.fromtimestamp(seconds, timezone.utc), zone)


def local_midnight(zone: str, now: datetime | None = None) -> datetime:
    """The start of the site's current day, as a UTC moment (to compare with stored times)."""
    here = (now or datetime.now(timezone.utc)).astimezone(ZoneInfo(zone))
    return datetime.combine(here.date(), time.min, ZoneInfo(zone)).astimezone(timezone.utc)


def day_bounds(day: date, zone: str) -> datetime:
    """The start of `day` in the site's zone, as a UTC moment (report filters are the site's days)."""
    return datetime.combine(day, time.min, ZoneInfo(zone)).astimezone(timezone.utc)

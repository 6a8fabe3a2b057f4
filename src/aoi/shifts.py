"""The plant's shifts: which hours of the day belong to which shift, and a shift's window in UTC.

A plan is written as `aoi serve --shifts` takes it: comma-separated `[NAME=]HH[:MM]-HH[:MM]`, e.g.
"06-14,14-22,22-06" (named after their hours) or "A=06-14,B=14-22,C=22-06". Hours are the plant's
wall clock (`--shift-timezone`, default the server's). A shift that ends at or before its start runs
past midnight and belongs to the date it starts on: shift "22-06" of 2026-03-01 is 22:00 on the 1st
to 06:00 on the 2nd. Shifts may leave hours uncovered, never overlap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_SHIFTS = "06-14,14-22,22-06"
_ENTRY = re.compile(
    r"(?:(?P<name>[A-Za-z0-9][A-Za-z0-9_-]{0,31})=)?(?P<start>\d{1,2}(?::\d{2})?)-(?P<end>\d{1,2}(?::\d{2})?)"
)
_DAY_MINUTES = 24 * 60


class ShiftError(ValueError):
    """A shift plan, shift name or time zone that cannot be used."""


def _minutes(text: str, entry: str, is_end: bool) -> int:
    hours, _, minutes = text.partition(":")
    h, m = int(hours), int(minutes or 0)
    if m > 59 or h > 24 or (h == 24 and (m or not is_end)):
        raise ShiftError(f"shift {entry!r}: {text!r} is not a time of day (00:00 to 23:59, or 24 as an end)")
    return h * 60 + m


@dataclass(frozen=True)
class Shift:
    """One shift: its name and its start and end in minutes after midnight (end <= start: past midnight)."""

    name: str
    start_min: int
    end_min: int

    @property
    def length_min(self) -> int:
        return (self.end_min - self.start_min) % _DAY_MINUTES or _DAY_MINUTES

    @property
    def hours_text(self) -> str:
        def hhmm(minutes: int) -> str:
            return f"{minutes // 60:02d}:{minutes % 60:02d}"

        return f"{hhmm(self.start_min)}-{hhmm(self.end_min)}"

    def window(self, day: date, zone: tzinfo) -> tuple[datetime, datetime]:
        """[since, until) in UTC of this shift on `day` (the date it starts on), in the plant's `zone`."""
        # Aware + timedelta is wall-clock arithmetic: on a DST day the shift still runs at its written hours.
        start = datetime.combine(day, time(0), tzinfo=zone) + timedelta(minutes=self.start_min)
        end = start + timedelta(minutes=self.length_min)
        return start.astimezone(UTC), end.astimezone(UTC)


@dataclass(frozen=True)
class ShiftPlan:
    shifts: tuple[Shift, ...]

    @classmethod
    def parse(cls, text: str) -> ShiftPlan:
        """A plan from `[NAME=]HH[:MM]-HH[:MM],...`; ShiftError saying what is wrong."""
        entries = [e.strip() for e in (text or "").split(",") if e.strip()]
        if not entries:
            raise ShiftError(f"no shift in {text!r}; write them like {DEFAULT_SHIFTS!r} or 'A=06-14,B=14-22'")
        shifts: list[Shift] = []
        for entry in entries:
            match = _ENTRY.fullmatch(entry)
            if match is None:
                raise ShiftError(f"shift {entry!r} is not [NAME=]HH[:MM]-HH[:MM], e.g. '06-14' or 'A=06:00-14:00'")
            start = _minutes(match["start"], entry, is_end=False)
            end = _minutes(match["end"], entry, is_end=True) % _DAY_MINUTES
            if start == end:
                raise ShiftError(f"shift {entry!r} starts and ends at the same time")
            name = match["name"] or f"{match['start']}-{match['end']}"
            shifts.append(Shift(name, start, end))
        names = [s.name for s in shifts]
        if len(set(names)) != len(names):
            raise ShiftError(f"shift names must differ: {', '.join(names)}")
        covered: dict[int, str] = {}
        for shift in shifts:
            for minute in range(shift.start_min, shift.start_min + shift.length_min):
                other = covered.setdefault(minute % _DAY_MINUTES, shift.name)
                if other != shift.name:
                    raise ShiftError(f"shifts {other!r} and {shift.name!r} overlap")
        return cls(tuple(shifts))

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.shifts]

    def get(self, name: str) -> Shift:
        for shift in self.shifts:
            if shift.name == name:
                return shift
        raise ShiftError(f"unknown shift {name[:40]!r}; the shifts are {', '.join(self.names)}")

    def current(self, moment: datetime, zone: tzinfo) -> tuple[date, Shift] | None:
        """The shift running at `moment` and the date it started on; None in hours no shift covers."""
        local = moment.astimezone(zone)
        minute = local.hour * 60 + local.minute
        for shift in self.shifts:
            offset = (minute - shift.start_min) % _DAY_MINUTES
            if offset < shift.length_min:
                started = local - timedelta(minutes=offset)
                return started.date(), shift
        return None


def plant_zone(name: str | None) -> tzinfo:
    """The plant's time zone: an IANA name ("Asia/Seoul"), or None for the server's own (its offset now)."""
    if not name:
        local = datetime.now().astimezone().tzinfo
        return local if local is not None else UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ShiftError(f"unknown time zone {name[:60]!r}; use an IANA name such as 'Asia/Seoul' or 'UTC'") from None

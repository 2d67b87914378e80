"""Reply targets counted in working hours: the week, the opening hours and the exceptions.

A mailbox whose team works Monday to Friday, 9:00 to 18:00, promises "within 8 hours" in
those hours: an email that arrives on Friday at 17:00 is due on Monday at 16:00, not at
1:00 on Saturday night. Public holidays close the office on a weekday, and China's
make-up working days (调休) open it on a weekend, so both are listed as exceptions.

The arithmetic is plain Python over a snapshot of the mailbox's settings, so that
rescheduling thousands of drafts reads the calendar once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, available_timezones

log = logging.getLogger(__name__)

# Exceptions that close an office for longer than this are a mistake in the calendar;
# the target then falls back to calendar hours rather than lying about the future.
SEARCH_DAYS = 400

WEEKDAYS = "1234567"  # ISO weekdays, Monday = 1


@dataclass(frozen=True)
class WorkingCalendar:
    """When a mailbox's team works: the usual week, its hours, and dated exceptions."""

    zone: ZoneInfo
    weekdays: frozenset[int]
    opens: time
    closes: time
    # Dates on which the usual week does not apply: True = a working day (a make-up
    # day on a weekend), False = closed (a public holiday).
    exceptions: dict[date, bool] = field(default_factory=dict)

    def is_working_day(self, day: date) -> bool:
        """Whether the team works on ``day``."""
        return self.exceptions.get(day, day.isoweekday() in self.weekdays)

    def _hours_of(self, day: date) -> tuple[datetime, datetime]:
        """The day's opening and closing, in UTC: elapsed time, whatever the clocks do."""
        return (
            datetime.combine(day, self.opens, self.zone).astimezone(UTC),
            datetime.combine(day, self.closes, self.zone).astimezone(UTC),
        )

    def add(self, start: datetime, hours: float) -> datetime:
        """The moment ``hours`` working hours after ``start`` (an aware datetime).

        Time outside the opening hours does not count: an email that arrives at night
        starts its clock when the office opens.
        """
        remaining = timedelta(hours=hours)
        start = start.astimezone(UTC)
        day = start.astimezone(self.zone).date()
        for _ in range(SEARCH_DAYS):
            if self.is_working_day(day):
                opens, closes = self._hours_of(day)
                begin = max(opens, start)
                if begin < closes:
                    if remaining <= closes - begin:
                        return begin + remaining
                    remaining -= closes - begin
            day += timedelta(days=1)
        log.warning(
            "No working hours in the %s days after %s: the reply target counts calendar hours",
            SEARCH_DAYS,
            start.isoformat(),
        )
        return start + timedelta(hours=hours)

    def between(self, start: datetime, end: datetime) -> float:
        """The working seconds from ``start`` to ``end`` (aware datetimes); 0 if ``end`` is
        not later. The inverse of ``add``: ``between(t, add(t, h))`` is ``h`` hours."""
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        total = timedelta()
        day, last = start.astimezone(self.zone).date(), end.astimezone(self.zone).date()
        while day <= last:
            if self.is_working_day(day):
                opens, closes = self._hours_of(day)
                total += max(min(closes, end) - max(opens, start), timedelta())
            day += timedelta(days=1)
        return total.total_seconds()


def parse_weekdays(text: str) -> frozenset[int]:
    """The ISO weekdays a string of digits names ("12345": Monday to Friday)."""
    return frozenset(int(c) for c in text if c in WEEKDAYS)


def weekday_runs(days: frozenset[int]) -> list[tuple[int, int]]:
    """Consecutive weekdays as (first, last) runs: {1,2,3,4,5,7} -> [(1, 5), (7, 7)]."""
    runs: list[tuple[int, int]] = []
    for day in sorted(days):
        if runs and runs[-1][1] == day - 1:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def validate_time_zone(name: str) -> None:
    """Refuse a time zone the system's database does not know (ValidationError)."""
    from django.core.exceptions import ValidationError

    if name and name not in available_timezones():
        raise ValidationError(
            f"Unknown time zone “{name}”: use an IANA name such as Asia/Shanghai."
        )

"""Supervisor numbers over a date range: decisions per reviewer, intent, template, mailbox.

The numbers come from ``drafts.daily``: each closed day is summed once per group and kept,
today is counted live, so a page costs the same with 10,000 drafts as with 1,000,000. This
module turns those totals into the page's rows, labels, medians, trend and CSV files. The
edit distance itself is stored when a draft is approved (``Draft.edit_distance``), never
computed here.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from statistics import median
from typing import Any

from django.contrib.auth.models import User
from django.db.models import Count
from django.utils import timezone
from django.utils.translation import gettext as _

from drafts import daily
from drafts.models import Draft, Mailbox, Outbox, PromptTemplate
from inference.drafting import INTENTS

DEFAULT_DAYS = 30
MAX_DAYS = 731
DIMENSIONS = list(daily.DIMENSIONS)
TABLES = [*DIMENSIONS, "trend"]
NONE_LABEL = "—"


@dataclass(frozen=True)
class DateRange:
    """Days ``start`` to ``end``, both included, by decision time in the local time zone."""

    start: date
    end: date
    error: str = ""

    @classmethod
    def default(cls, error: str = "") -> DateRange:
        today = timezone.localdate()
        return cls(today - timedelta(days=DEFAULT_DAYS - 1), today, error)

    @classmethod
    def from_query(cls, params: Mapping[str, str]) -> DateRange:
        """The ``from`` and ``to`` of a query string; the last 30 days if absent or invalid."""
        given_start, given_end = params.get("from", ""), params.get("to", "")
        if not given_start and not given_end:
            return cls.default()
        default = cls.default()
        try:
            start = date.fromisoformat(given_start) if given_start else default.start
            end = date.fromisoformat(given_end) if given_end else default.end
        except ValueError:
            start = end = None
        if start is None or end is None or start > end or (end - start).days >= MAX_DAYS:
            return cls.default(
                _(
                    "Dates must be given as YYYY-MM-DD, with “from” not after “to” and at most "
                    "%(days)s days apart; showing the last 30 days instead."
                )
                % {"days": MAX_DAYS}
            )
        return cls(start, end)

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range((self.end - self.start).days + 1)]


@dataclass
class Row:
    """One group's decisions: a reviewer's, an intent's, a template version's, a mailbox's."""

    label: str
    approved_unchanged: int = 0
    approved_edited: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    send_failed: int = 0
    median_edit: float | None = None
    median_seconds: float | None = None
    median_answer_seconds: float | None = None
    targeted: int = 0  # approvals of emails that had a reply target
    on_time: int = 0  # of those, approved by the due time

    @property
    def reviewer(self) -> str:
        return self.label

    @property
    def decided(self) -> int:
        return self.approved_unchanged + self.approved_edited + self.rejected

    def share(self, count: int) -> int:
        """Percent of this group's decisions, for the bar chart."""
        return round(100 * count / self.decided) if self.decided else 0

    @property
    def bar(self) -> list[tuple[str, str, int, int]]:
        """(css class, label, percent, count) per kind of decision."""
        kinds = [
            ("unchanged", _("approved unchanged"), self.approved_unchanged),
            ("edited", _("approved after edits"), self.approved_edited),
            ("rejected", _("rejected"), self.rejected),
        ]
        return [(kind, label, self.share(count), count) for kind, label, count in kinds]

    @property
    def reason_counts(self) -> list[tuple[str, str, int]]:
        """(reason, label, count) of the reasons given at least once."""
        return [
            (reason, str(label), self.reasons[reason])
            for reason, label in Draft.REJECT_REASONS
            if self.reasons.get(reason)
        ]

    @property
    def edit_display(self) -> str:
        return "–" if self.median_edit is None else f"{self.median_edit:.2f}"

    @property
    def median_display(self) -> str:
        return _duration(self.median_seconds)

    @property
    def answer_display(self) -> str:
        return _duration(self.median_answer_seconds)

    @property
    def on_time_percent(self) -> int | None:
        """Percent of the approvals with a reply target that met it; None: none had one."""
        return round(100 * self.on_time / self.targeted) if self.targeted else None

    @property
    def on_time_display(self) -> str:
        if self.on_time_percent is None:
            return "–"
        return f"{self.on_time_percent}% ({self.on_time}/{self.targeted})"


def _duration(seconds: float | None) -> str:
    """A median time as people read it: "2h 05m", "3m 07s"; "–" for none."""
    if seconds is None:
        return "–"
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return _("%(hours)sh %(minutes)sm") % {"hours": hours, "minutes": f"{minutes:02d}"}
    return _("%(minutes)sm %(seconds)ss") % {"minutes": minutes, "seconds": f"{seconds:02d}"}


def _median(values: list[int], scale: int) -> float | None:
    return median(values) / scale if values else None


def _rows(table: str, groups: Mapping[Any, daily.Tally]) -> list[Row]:
    """One row per group of ``table``, busiest first."""
    labels = _labels(table, groups)
    rows = [
        Row(
            label=labels.get(key, NONE_LABEL),
            approved_unchanged=t.decided - t.rejected - t.edited,
            approved_edited=t.edited,
            rejected=t.rejected,
            reasons={reason: t.reasons.get(reason, 0) for reason, _label in Draft.REJECT_REASONS},
            sent=t.sent,
            send_failed=t.send_failed,
            # Each day's values arrive sorted: median()'s sort merges those runs quickly.
            median_edit=_median(t.edits, daily.EDIT_SCALE),
            median_seconds=_median(t.waits, daily.WAIT_SCALE),
            median_answer_seconds=_median(t.answers, daily.WAIT_SCALE),
            targeted=t.targeted,
            on_time=t.on_time,
        )
        for key, t in groups.items()
    ]
    return sorted(rows, key=lambda r: (-r.decided, r.label))


def _labels(table: str, keys: Iterable[Any]) -> dict[Any, str]:
    """What a supervisor calls each group: a username, an intent, "name vN", a mailbox."""
    keys = [key for key in keys if key not in (None, "")]
    if table == "reviewer":
        return dict(User.objects.filter(pk__in=keys).values_list("pk", "username"))
    if table == "template":
        templates = PromptTemplate.objects.filter(pk__in=keys).values_list("pk", "name", "version")
        return {pk: f"{name} v{version}" for pk, name, version in templates}
    if table == "mailbox":
        return dict(Mailbox.objects.filter(pk__in=keys).values_list("pk", "name"))
    return {
        key: f"{INTENTS[key][0]} · {INTENTS[key][1]}" if key in INTENTS else key for key in keys
    }


def breakdowns(dates: DateRange, totals: daily.Totals | None = None) -> dict[str, list[Row]]:
    """Every table of the page: a row per reviewer, intent, template version and mailbox."""
    totals = totals or daily.totals(dates.start, dates.end)
    return {table: _rows(table, totals.groups[table]) for table in DIMENSIONS}


def breakdown(table: str, dates: DateRange) -> list[Row]:
    """A row per reviewer, intent, template version or mailbox (``table``), busiest first."""
    return breakdowns(dates)[table]


def per_reviewer(dates: DateRange | None = None) -> list[Row]:
    """A row per reviewer who decided anything in ``dates`` (the last 30 days), busiest first."""
    return breakdown("reviewer", dates or DateRange.default())


@dataclass
class Day:
    """One day's decisions, for the trend chart."""

    day: date
    approved_unchanged: int = 0
    approved_edited: int = 0
    rejected: int = 0
    on_time: int = 0  # approvals that met their reply target
    late: int = 0  # approvals that missed it

    @property
    def decided(self) -> int:
        return self.approved_unchanged + self.approved_edited + self.rejected


def trend(dates: DateRange, totals: daily.Totals | None = None) -> list[Day]:
    """Decisions per day of the range, every day included (a quiet day has zeros)."""
    totals = totals or daily.totals(dates.start, dates.end)
    days = []
    for day in dates.days:
        t = totals.days.get(day, daily.Tally())
        days.append(
            Day(
                day,
                t.decided - t.rejected - t.edited,
                t.edited,
                t.rejected,
                t.on_time,
                t.targeted - t.on_time,
            )
        )
    return days


def deliveries() -> list[tuple[str, str, int]]:
    """(state, label, count) of every reply in the outbox, in the order they progress."""
    counts = dict(Outbox.objects.order_by().values_list("state").annotate(n=Count("id")))
    return [(state, label, counts.get(state, 0)) for state, label in Outbox.STATES]


# --- CSV -------------------------------------------------------------------------------------

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    """A spreadsheet must not run a label as a formula (CSV injection): quote it."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_filename(table: str, dates: DateRange) -> str:
    return f"replyhub-stats-{table}-{dates.start.isoformat()}-{dates.end.isoformat()}.csv"


def csv_rows(table: str, dates: DateRange) -> list[list[object]]:
    """The header and rows of one table (``TABLES``) as a spreadsheet gets them."""
    if table == "trend":
        header = [
            *(_("Day"), _("Approved unchanged"), _("Approved after edits"), _("Rejected")),
            *(_("Answered within the reply target"), _("Answered after the reply target")),
        ]
        body = [
            [
                d.day.isoformat(),
                d.approved_unchanged,
                d.approved_edited,
                d.rejected,
                d.on_time,
                d.late,
            ]
            for d in trend(dates)
        ]
        return [header, *body]
    header = [
        table_headings()[table],
        _("Drafts reviewed"),
        _("Approved unchanged"),
        _("Approved after edits"),
        _("Rejected"),
        *(_("Rejected: %(reason)s") % {"reason": label} for _r, label in Draft.REJECT_REASONS),
        _("Median edit distance"),
        _("Median seconds to decision"),
        _("Median seconds to answer"),
        _("Approvals with a reply target"),
        _("Answered within the reply target"),
        _("Sent"),
        _("Sending failed or uncertain"),
    ]
    body = [
        [
            r.label,
            r.decided,
            r.approved_unchanged,
            r.approved_edited,
            r.rejected,
            *(r.reasons.get(reason, 0) for reason, _label in Draft.REJECT_REASONS),
            "" if r.median_edit is None else round(r.median_edit, 4),
            "" if r.median_seconds is None else round(r.median_seconds),
            "" if r.median_answer_seconds is None else round(r.median_answer_seconds),
            r.targeted,
            r.on_time,
            r.sent,
            r.send_failed,
        ]
        for r in breakdown(table, dates)
    ]
    return [header, *body]


def write_csv(out: Any, table: str, dates: DateRange) -> None:
    """Write one table as CSV (UTF-8, no BOM; the caller's ``out`` encodes) to ``out``."""
    writer = csv.writer(out)
    for row in csv_rows(table, dates):
        writer.writerow([_cell(value) for value in row])


def table_headings() -> dict[str, str]:
    """The first column's heading per table, in the active language."""
    return {
        "reviewer": _("Reviewer"),
        "intent": _("Intent"),
        "template": _("Template"),
        "mailbox": _("Mailbox"),
    }

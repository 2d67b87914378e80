"""Supervisor numbers over a date range: decisions per reviewer, intent, template, mailbox.

Everything is grouped in the database, in one query per page (plus one for the trend): per
reviewer × intent × template × mailbox, with each group's edit distances and times to
decision joined into a string, because SQLite has no median aggregate; Python sums the
groups into the four tables and takes the medians. The edit distance itself is stored when
a draft is approved (``Draft.edit_distance``), never computed here.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from statistics import median
from typing import Any

from django.contrib.auth.models import User
from django.db.models import (
    Aggregate,
    Case,
    Count,
    F,
    FloatField,
    Func,
    Q,
    QuerySet,
    TextField,
    When,
)
from django.utils import timezone
from django.utils.translation import gettext as _

from drafts.models import Draft, Mailbox, Outbox, PromptTemplate
from inference.drafting import INTENTS

APPROVED = Draft.APPROVED_STATUSES
NOT_DELIVERED = [Draft.SEND_FAILED, Draft.SEND_UNCERTAIN]
DEFAULT_DAYS = 30
MAX_DAYS = 731
# The breakdowns: table name -> the Draft column it groups by.
DIMENSIONS = {
    "reviewer": "decided_by",
    "intent": "intent",
    "template": "template",
    "mailbox": "mailbox",
}
TABLES = [*DIMENSIONS, "trend"]
NONE_LABEL = "—"


class EpochSeconds(Func):
    """Seconds since 1970 of a datetime column, as a float, in SQL on SQLite and PostgreSQL.

    Lets the database subtract two datetimes and bucket days without Django parsing
    100,000 datetimes in Python.
    """

    output_field = FloatField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list]:
        template = "((julianday(%(expressions)s) - 2440587.5) * 86400.0)"
        return self.as_sql(compiler, connection, template=template, **extra)

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list]:
        template = "EXTRACT(EPOCH FROM %(expressions)s)::double precision"
        return self.as_sql(compiler, connection, template=template, **extra)


class DayIndex(Func):
    """Whole days from ``start`` (epoch seconds) to a datetime column; 0 is the first day.

    Days are 86,400 s from local midnight of the range's first day: exact in zones without
    daylight saving time (such as the default, Asia/Shanghai), an hour off around a switch
    elsewhere.
    """

    output_field = FloatField()

    def __init__(self, column: str, start: float) -> None:
        super().__init__((EpochSeconds(column) - start) / 86400.0)

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list]:
        # The range starts at day 0, so every value is >= 0 and truncation is floor.
        return self.as_sql(compiler, connection, template="CAST(%(expressions)s AS INTEGER)")

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list]:
        return self.as_sql(compiler, connection, template="FLOOR(%(expressions)s)::integer")


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

    @property
    def first_moment(self) -> datetime:
        return timezone.make_aware(datetime.combine(self.start, time.min))

    @property
    def after_last_moment(self) -> datetime:
        return timezone.make_aware(datetime.combine(self.end + timedelta(days=1), time.min))

    def decided(self) -> QuerySet[Draft]:
        """Drafts approved or rejected within the range.

        Only approve() and reject() set ``decided_at``, and no status leads back from theirs,
        so the range alone selects them. Filtering on the status too would tempt SQLite
        (before ANALYZE has run) into the queue's index and a read of every wide row.
        """
        return Draft.objects.filter(
            decided_at__gte=self.first_moment, decided_at__lt=self.after_last_moment
        ).order_by()


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
        if self.median_seconds is None:
            return "–"
        minutes, seconds = divmod(round(self.median_seconds), 60)
        hours, minutes = divmod(minutes, 60)
        if hours:
            return _("%(hours)sh %(minutes)sm") % {"hours": hours, "minutes": f"{minutes:02d}"}
        return _("%(minutes)sm %(seconds)ss") % {"minutes": minutes, "seconds": f"{seconds:02d}"}


COLUMNS = {table: f"{column}_id" if column != "intent" else column
           for table, column in DIMENSIONS.items()}  # fmt: skip


class Joined(Aggregate):
    """Every non-null value of a group, rounded to whole numbers, in one comma-separated string.

    How the medians leave the database: one short string per group instead of a row per
    draft (fetching 100,000 rows costs more than the whole rest of the page).
    """

    function = "GROUP_CONCAT"
    output_field = TextField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list]:
        template = "GROUP_CONCAT(CAST(%(expressions)s AS INTEGER))"
        return self.as_sql(compiler, connection, template=template, **extra)

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list]:
        template = "STRING_AGG(CAST(%(expressions)s AS BIGINT)::text, ',')"
        return self.as_sql(compiler, connection, template=template, **extra)


# Edit distances travel as millionths, times to decision as milliseconds.
EDIT_SCALE, WAIT_SCALE = 1_000_000, 1000


def _combinations(drafts: QuerySet[Draft]) -> list[dict[str, Any]]:
    """One GROUP BY query: every count, per reviewer × intent × template × mailbox.

    A few hundred rows, which Python then sums into the four tables: one scan of the range
    instead of four. Each row also carries its edit distances and times to decision, for
    the medians.
    """
    rejected = Q(status=Draft.REJECTED)
    aggregates = {
        "decided": Count("id"),
        "rejected": Count("id", filter=rejected),
        # Stored edit distances are 0 exactly when the whitespace-normalized texts are equal,
        # which is what Draft.was_edited calls unchanged.
        "edited": Count("id", filter=Q(status__in=APPROVED, edit_distance__gt=0)),
        "sent": Count("id", filter=Q(status=Draft.SENT)),
        "send_failed": Count("id", filter=Q(status__in=NOT_DELIVERED)),
        "edits": Joined(
            Case(When(status__in=APPROVED, then=F("edit_distance") * EDIT_SCALE), default=None)
        ),
        "waits": Joined((EpochSeconds("decided_at") - EpochSeconds("ready_at")) * WAIT_SCALE),
    }
    for reason, _label in Draft.REJECT_REASONS:
        aggregates[f"reason_{reason}"] = Count("id", filter=rejected & Q(reject_reason=reason))
    combinations = list(drafts.values(*COLUMNS.values()).annotate(**aggregates))
    for combination in combinations:
        for name in ("edits", "waits"):
            values = combination[name]
            combination[name] = sorted(map(int, values.split(","))) if values else []
    return combinations


Medians = dict[str, dict[Any, tuple[float | None, float | None]]]


def _medians(combinations: list[dict[str, Any]]) -> Medians:
    """(median edit distance, median seconds to decision) per table and group."""
    result: Medians = {}
    for table, column in COLUMNS.items():
        groups: defaultdict[Any, tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))
        for combination in combinations:
            edits, waits = groups[combination[column]]
            edits.extend(combination["edits"])
            waits.extend(combination["waits"])
        # Each combination's values are sorted: median()'s sort merges those runs quickly.
        result[table] = {
            key: (
                median(edits) / EDIT_SCALE if edits else None,
                median(waits) / WAIT_SCALE if waits else None,
            )
            for key, (edits, waits) in groups.items()
        }
    return result


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


def _rows(table: str, combinations: list[dict[str, Any]], medians: Medians) -> list[Row]:
    """Sum the combinations into one row per group of ``table``, busiest first."""
    column = COLUMNS[table]
    reasons = [reason for reason, _label in Draft.REJECT_REASONS]
    sums: dict[Any, Counter[str]] = defaultdict(Counter)
    for combination in combinations:
        counts = sums[combination[column]]
        for name in ("decided", "rejected", "edited", "sent", "send_failed"):
            counts[name] += combination[name]
        for reason in reasons:
            counts[reason] += combination[f"reason_{reason}"]
    labels = _labels(table, sums)
    rows = []
    for key, counts in sums.items():
        median_edit, median_seconds = medians[table].get(key, (None, None))
        rows.append(
            Row(
                label=labels.get(key, NONE_LABEL),
                approved_unchanged=counts["decided"] - counts["rejected"] - counts["edited"],
                approved_edited=counts["edited"],
                rejected=counts["rejected"],
                reasons={reason: counts[reason] for reason in reasons},
                sent=counts["sent"],
                send_failed=counts["send_failed"],
                median_edit=median_edit,
                median_seconds=median_seconds,
            )
        )
    return sorted(rows, key=lambda r: (-r.decided, r.label))


def breakdowns(dates: DateRange) -> dict[str, list[Row]]:
    """Every table of the page: a row per reviewer, intent, template version and mailbox."""
    combinations = _combinations(dates.decided())
    medians = _medians(combinations)
    return {table: _rows(table, combinations, medians) for table in DIMENSIONS}


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

    @property
    def decided(self) -> int:
        return self.approved_unchanged + self.approved_edited + self.rejected


def trend(dates: DateRange) -> list[Day]:
    """Decisions per day of the range, every day included (a quiet day has zeros)."""
    counts = (
        dates.decided()
        .annotate(day=DayIndex("decided_at", dates.first_moment.timestamp()))
        .values("day")
        .annotate(
            decided=Count("id"),
            rejected=Count("id", filter=Q(status=Draft.REJECTED)),
            edited=Count("id", filter=Q(status__in=APPROVED, edit_distance__gt=0)),
        )
    )
    days = [Day(day) for day in dates.days]
    for group in counts:
        if 0 <= int(group["day"]) < len(days):
            day = days[int(group["day"])]
            day.rejected, day.approved_edited = group["rejected"], group["edited"]
            day.approved_unchanged = group["decided"] - group["rejected"] - group["edited"]
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
        header = [_("Day"), _("Approved unchanged"), _("Approved after edits"), _("Rejected")]
        body = [
            [d.day.isoformat(), d.approved_unchanged, d.approved_edited, d.rejected]
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

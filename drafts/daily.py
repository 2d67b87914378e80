"""Each closed day's decisions, summed once, so the stats page need not read every draft.

A day that has ended (in the local time zone) is summarised the first time a stats page asks
for it, or by the nightly schedule: one ``DayTotal`` row per reviewer, intent, template
version and mailbox that decided anything that day, holding the counts and the day's edit
distances, times to decision and times to answer (sorted, packed as 64-bit integers) for
exact medians, and how many approvals met their reply target. A 90-day page then reads
about 1,500 small rows instead of every decided draft; today is always counted live.

A summary stays valid until something changes a decision it counted:
- a reply's delivery moves on (``Outbox._move`` calls ``forget``: sent, failed, uncertain),
- a draft, reviewer, template or mailbox is deleted (signals below),
- a mailbox's working hours or the calendar days change (times to answer are counted in
  them for the mailboxes that count their reply targets in working hours).
``forget`` bumps the day's ``version``; a summary counts only if it was made at the version
it carries, so a summary computed while a send moved on is never taken for a current one.
A day counts as closed 10 minutes after midnight, when its last approvals have committed.
Nothing else in ReplyHub writes a decision into a past day; for what might (an import, a
restore, a hand edit) the nightly schedule counts the last 31 days' decisions again and
summarises the days that differ. Pages never count the drafts of closed days: that would
cost time in proportion to the drafts, which this module exists to avoid.
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_right
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import F, FloatField, Func
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.utils import timezone

from drafts.models import Draft, Mailbox, PromptTemplate

# The breakdowns: name -> the Draft field it groups by.
DIMENSIONS = {
    "reviewer": "decided_by_id",
    "intent": "intent",
    "template": "template_id",
    "mailbox": "mailbox_id",
}
MAILBOX = list(DIMENSIONS).index("mailbox")
# Edit distances are kept as millionths, times to decision as milliseconds.
EDIT_SCALE, WAIT_SCALE = 1_000_000, 1000
# Days summarised per query when many are missing (bounds the rows held in memory).
SPAN_DAYS = 31
CLOSING_GRACE = timedelta(minutes=10)
_DAY = timedelta(days=1)


class EpochSeconds(Func):
    """Seconds since 1970 of a datetime column, as a float, in SQL on SQLite and PostgreSQL.

    Lets the database hand over numbers instead of 100,000 datetimes for Django to parse.
    """

    output_field = FloatField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list]:
        template = "((julianday(%(expressions)s) - 2440587.5) * 86400.0)"
        return self.as_sql(compiler, connection, template=template, **extra)

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list]:
        template = "EXTRACT(EPOCH FROM %(expressions)s)::double precision"
        return self.as_sql(compiler, connection, template=template, **extra)


class StatsDay(models.Model):
    """One local calendar day: whether its summary is current, and what it counted."""

    day = models.DateField(unique=True)
    version = models.PositiveIntegerField(default=0, help_text="Raised when a decision changes.")
    summarized_version = models.PositiveIntegerField(null=True, blank=True)
    decisions = models.PositiveIntegerField(default=0)
    summarized_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["day"]

    def __str__(self) -> str:
        return f"{self.day} ({self.decisions} decisions)"

    @property
    def is_current(self) -> bool:
        return self.summarized_version == self.version


class DayTotal(models.Model):
    """A day's decisions by one reviewer, intent, template version or mailbox."""

    day = models.DateField()
    dimension = models.CharField(max_length=10)
    key = models.CharField(max_length=100, blank=True, help_text="Id or intent; empty: none.")
    decided = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    edited = models.PositiveIntegerField(default=0)
    sent = models.PositiveIntegerField(default=0)
    send_failed = models.PositiveIntegerField(default=0)
    reasons = models.JSONField(default=dict)
    edits = models.BinaryField(default=b"", help_text="Sorted edit distances, millionths.")
    waits = models.BinaryField(default=b"", help_text="Sorted times to decision, ms.")
    # Approved replies: the time from the email's arrival to the approval, and how many had a
    # reply target (``targeted``) and met it (``on_time``).
    answers = models.BinaryField(default=b"", help_text="Sorted times to answer, ms.")
    targeted = models.PositiveIntegerField(default=0)
    on_time = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "dimension", "key"], name="day_total_unique")
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.dimension} {self.key or '—'}: {self.decided}"


@dataclass
class Tally:
    """Decisions of one group: counts, and the values its medians are taken from."""

    decided: int = 0
    rejected: int = 0
    edited: int = 0
    sent: int = 0
    send_failed: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    edits: array[int] = field(default_factory=lambda: array("q"))
    waits: array[int] = field(default_factory=lambda: array("q"))
    answers: array[int] = field(default_factory=lambda: array("q"))
    targeted: int = 0
    on_time: int = 0

    def add(self, other: Tally) -> None:
        self.decided += other.decided
        self.rejected += other.rejected
        self.edited += other.edited
        self.sent += other.sent
        self.send_failed += other.send_failed
        self.reasons.update(other.reasons)
        self.edits.extend(other.edits)
        self.waits.extend(other.waits)
        self.answers.extend(other.answers)
        self.targeted += other.targeted
        self.on_time += other.on_time


@dataclass
class Totals:
    """A date range's tallies: per dimension and group, and per day (for the trend)."""

    groups: dict[str, defaultdict[Any, Tally]] = field(
        default_factory=lambda: {name: defaultdict(Tally) for name in DIMENSIONS}
    )
    days: defaultdict[date, Tally] = field(default_factory=lambda: defaultdict(Tally))


def _utc(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, UTC)


def _pack(values: array[int]) -> bytes:
    numbers = array("q", sorted(values))
    if sys.byteorder == "big":  # stored little-endian whatever the machine
        numbers.byteswap()
    return numbers.tobytes()


def _unpack(blob: bytes | memoryview) -> array[int]:
    numbers = array("q")
    numbers.frombytes(blob)
    if sys.byteorder == "big":
        numbers.byteswap()
    return numbers


def _key(dimension: str, stored: str) -> Any:
    """The group's key as the Draft column holds it (an id, an intent, or None)."""
    if dimension == "intent":
        return stored
    return int(stored) if stored else None


def midnight(day: date) -> datetime:
    """The moment ``day`` starts in the local time zone."""
    return timezone.make_aware(datetime.combine(day, time.min))


def tally_decisions(start: date, end: date) -> dict[date, dict[str, dict[Any, Tally]]]:
    """Count every decision made from ``start`` to ``end`` (both included), per day and group.

    One query over the stats index (and one read of the working calendars), datetimes fetched
    as epoch seconds, days found by bisecting the local midnights (right across a
    daylight-saving switch).
    """
    days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    midnights = [midnight(day).timestamp() for day in days]
    # Mailboxes that count their reply targets in working hours count times to answer in
    # them too: an email of Friday evening answered first thing on Monday took minutes.
    calendars = Mailbox.working_calendars()
    columns = list(DIMENSIONS.values())
    rows = (
        Draft.objects.filter(decided_at__gte=midnight(start), decided_at__lt=midnight(end) + _DAY)
        .order_by()
        .annotate(
            decided_s=EpochSeconds("decided_at"),
            ready_s=EpochSeconds("ready_at"),
            received_s=EpochSeconds("created_at"),
            due_s=EpochSeconds("due_at"),
        )
        .values_list(
            *("decided_s", "ready_s", "received_s", "due_s"),
            *("status", "reject_reason", "edit_distance"),
            *columns,
        )
    )
    result: dict[date, dict[str, dict[Any, Tally]]] = {}
    for decided_s, ready_s, received_s, due_s, status, reason, distance, *keys in rows.iterator(
        chunk_size=5000
    ):
        day = days[max(bisect_right(midnights, decided_s) - 1, 0)]
        groups = result.setdefault(day, {name: {} for name in DIMENSIONS})
        approved = status in Draft.APPROVED_STATUSES
        answered = decided_s - received_s
        if approved and (calendar := calendars.get(keys[MAILBOX])):
            answered = calendar.between(_utc(received_s), _utc(decided_s))
        for name, key in zip(DIMENSIONS, keys, strict=True):
            tally = groups[name].get(key)
            if tally is None:
                tally = groups[name][key] = Tally()
            tally.decided += 1
            if status == Draft.REJECTED:
                tally.rejected += 1
                tally.reasons[reason] += 1
            # A stored distance is 0 exactly when the whitespace-normalised texts are equal,
            # which is what Draft.was_edited calls unchanged.
            elif approved and distance:
                tally.edited += 1
            if status == Draft.SENT:
                tally.sent += 1
            elif status in (Draft.SEND_FAILED, Draft.SEND_UNCERTAIN):
                tally.send_failed += 1
            if approved and distance is not None:
                tally.edits.append(round(distance * EDIT_SCALE))
            if ready_s is not None:
                tally.waits.append(round((decided_s - ready_s) * WAIT_SCALE))
            if approved:
                tally.answers.append(round(answered * WAIT_SCALE))
                if due_s is not None:
                    tally.targeted += 1
                    tally.on_time += decided_s <= due_s
    return result


def summarize(days: list[date]) -> None:
    """Store current summaries of ``days`` (closed days), in spans of consecutive days."""
    days = sorted(set(days))
    spans: list[list[date]] = []
    for day in days:
        if spans and day - spans[-1][-1] == _DAY and len(spans[-1]) < SPAN_DAYS:
            spans[-1].append(day)
        else:
            spans.append([day])
    for span in spans:
        _summarize_span(span)


def _summarize_span(span: list[date]) -> None:
    StatsDay.objects.bulk_create([StatsDay(day=day) for day in span], ignore_conflicts=True)
    # The versions are read before the decisions: a change after this raises the version
    # and the summary written below will not count as current.
    versions = dict(StatsDay.objects.filter(day__in=span).values_list("day", "version"))
    tallies = tally_decisions(span[0], span[-1])
    totals = [
        DayTotal(
            day=day,
            dimension=name,
            key="" if key is None else str(key),
            decided=t.decided,
            rejected=t.rejected,
            edited=t.edited,
            sent=t.sent,
            send_failed=t.send_failed,
            reasons=dict(t.reasons),
            edits=_pack(t.edits),
            waits=_pack(t.waits),
            answers=_pack(t.answers),
            targeted=t.targeted,
            on_time=t.on_time,
        )
        for day, groups in tallies.items()
        for name, tallied in groups.items()
        for key, t in tallied.items()
    ]
    now = timezone.now()
    try:
        with transaction.atomic():
            DayTotal.objects.filter(day__in=span).delete()
            DayTotal.objects.bulk_create(totals, batch_size=500)
            for day in span:
                decisions = sum(t.decided for t in tallies.get(day, {}).get("mailbox", {}).values())
                StatsDay.objects.filter(day=day, version=versions[day]).update(
                    summarized_version=versions[day], decisions=decisions, summarized_at=now
                )
    except IntegrityError:
        pass  # another request summarised the same days at the same moment: theirs stands


def forget(moment: datetime | None) -> None:
    """The decisions of the day of ``moment`` changed: its summary is no longer current."""
    if moment is not None:
        day = timezone.localtime(moment).date()
        StatsDay.objects.filter(day=day).update(version=F("version") + 1)


def forget_all() -> None:
    """Something every summary may count changed (a reviewer or template deleted, a
    mailbox's working hours or the calendar days changed)."""
    StatsDay.objects.update(version=F("version") + 1)


def _stale(closed: list[date], verify: bool = False) -> list[date]:
    """Closed days whose summary is missing or not current; with ``verify``, also those
    whose decisions, counted again from the drafts, differ from the summary's."""
    if not closed:
        return []
    known = {s.day: s for s in StatsDay.objects.filter(day__gte=closed[0], day__lte=closed[-1])}
    stale = [day for day in closed if day not in known or not known[day].is_current]
    if verify:
        counted = tally_counts(closed[0], closed[-1])
        stale += [
            day
            for day in closed
            if day in known and known[day].is_current and counted[day] != known[day].decisions
        ]
    return sorted(stale)


def tally_counts(start: date, end: date) -> Counter[date]:
    """Decisions per local day from ``start`` to ``end``, counted from the drafts."""
    times = Draft.objects.filter(
        decided_at__gte=midnight(start), decided_at__lt=midnight(end) + _DAY
    ).annotate(decided_s=EpochSeconds("decided_at"))
    days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    midnights = [midnight(day).timestamp() for day in days]
    counts: Counter[date] = Counter()
    for decided_s in times.order_by().values_list("decided_s", flat=True).iterator(5000):
        counts[days[max(bisect_right(midnights, decided_s) - 1, 0)]] += 1
    return counts


def last_closed_day() -> date:
    """The latest day that ended more than CLOSING_GRACE ago: an approval made at 23:59:59
    has committed by then, so the day's summary will not miss it."""
    return timezone.localdate(timezone.now() - CLOSING_GRACE) - _DAY


def totals(start: date, end: date) -> Totals:
    """Every decision from ``start`` to ``end``: closed days from their summaries (made now
    where missing or out of date), the rest (today) counted from the drafts."""
    days = [start + timedelta(days=n) for n in range((end - start).days + 1)]
    last_closed = last_closed_day()
    closed = [day for day in days if day <= last_closed]
    if stale := _stale(closed):
        summarize(stale)
    result = Totals()
    if closed:
        stored = DayTotal.objects.filter(day__gte=closed[0], day__lte=closed[-1]).values_list(
            "day", "dimension", "key", "decided", "rejected", "edited", "sent", "send_failed",
            "reasons", "edits", "waits", "answers", "targeted", "on_time",
        )  # fmt: skip
        for day, name, key, *counts, reasons, edits, waits, answers, targeted, on_time in stored:
            tally = Tally(
                *counts,
                Counter(reasons),
                _unpack(edits),
                _unpack(waits),
                _unpack(answers),
                targeted,
                on_time,
            )
            result.groups[name][_key(name, key)].add(tally)
            if name == "mailbox":  # every draft has a mailbox: these rows sum to the day
                result.days[day].add(_day_part(tally))
    if open_days := [day for day in days if day > last_closed]:
        for day, groups in tally_decisions(open_days[0], open_days[-1]).items():
            for name, tallied in groups.items():
                for key, tally in tallied.items():
                    result.groups[name][key].add(tally)
                    if name == "mailbox":
                        result.days[day].add(_day_part(tally))
    return result


def _day_part(tally: Tally) -> Tally:
    """What the trend charts need of a group's tally: its counts, not its medians."""
    return Tally(
        tally.decided, tally.rejected, tally.edited, targeted=tally.targeted, on_time=tally.on_time
    )


def summarize_recent(days: int = 31) -> int:
    """The nightly schedule: summarise the last ``days`` closed days where needed, checking
    each against the drafts (a decision stored with a past date by an import, a restore or
    a hand edit is counted from the next night on); how many days it summarised."""
    last = last_closed_day()
    stale = _stale([last - timedelta(days=n) for n in range(days - 1, -1, -1)], verify=True)
    summarize(stale)
    return len(stale)


@receiver(post_delete, sender=Draft)
def _draft_deleted(sender: type, instance: Draft, **kwargs: Any) -> None:
    forget(instance.decided_at)


def _everything_changed(sender: type, **kwargs: Any) -> None:
    forget_all()


# Deleting one of these sets the drafts' column to NULL (or deletes the drafts) without a
# signal per draft.
for _model in (settings.AUTH_USER_MODEL, PromptTemplate, Mailbox):
    post_delete.connect(_everything_changed, sender=_model, dispatch_uid=f"daily-{_model}")

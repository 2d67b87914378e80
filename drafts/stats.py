"""Supervisor numbers: what each reviewer decided, and how fast."""

from __future__ import annotations

from dataclasses import dataclass
from statistics import median

from django.db.models import Count
from django.utils.translation import gettext as _

from drafts.models import Draft, Outbox

DECIDED = [
    *(Draft.APPROVED, Draft.SENDING, Draft.SENT, Draft.SEND_FAILED, Draft.SEND_UNCERTAIN),
    Draft.REJECTED,
]


@dataclass
class ReviewerRow:
    """One reviewer's decisions."""

    reviewer: str
    approved_unchanged: int = 0
    approved_edited: int = 0
    rejected: int = 0
    sent: int = 0
    median_seconds: float | None = None

    @property
    def decided(self) -> int:
        return self.approved_unchanged + self.approved_edited + self.rejected

    def share(self, count: int) -> int:
        """Percent of this reviewer's decisions, for the bar chart."""
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
    def median_display(self) -> str:
        if self.median_seconds is None:
            return "–"
        minutes, seconds = divmod(round(self.median_seconds), 60)
        hours, minutes = divmod(minutes, 60)
        if hours:
            return _("%(hours)sh %(minutes)sm") % {"hours": hours, "minutes": f"{minutes:02d}"}
        return _("%(minutes)sm %(seconds)ss") % {"minutes": minutes, "seconds": f"{seconds:02d}"}


def per_reviewer() -> list[ReviewerRow]:
    """A row per reviewer who decided anything, busiest first."""
    rows: dict[str, ReviewerRow] = {}
    waits: dict[str, list[float]] = {}
    decided = Draft.objects.filter(status__in=DECIDED, decided_by__isnull=False).select_related(
        "decided_by"
    )
    for draft in decided.only(
        "status", "generated_text", "reply_text", "ready_at", "decided_at", "decided_by__username"
    ):
        name = draft.decided_by.username
        row = rows.setdefault(name, ReviewerRow(name))
        if draft.status == Draft.REJECTED:
            row.rejected += 1
        elif draft.was_edited:
            row.approved_edited += 1
        else:
            row.approved_unchanged += 1
        row.sent += draft.status == Draft.SENT
        if draft.ready_at and draft.decided_at:
            waits.setdefault(name, []).append((draft.decided_at - draft.ready_at).total_seconds())
    for name, values in waits.items():
        rows[name].median_seconds = median(values)
    return sorted(rows.values(), key=lambda r: (-r.decided, r.reviewer))


def deliveries() -> list[tuple[str, str, int]]:
    """(state, label, count) of every reply in the outbox, in the order they progress."""
    counts = dict(Outbox.objects.order_by().values_list("state").annotate(n=Count("id")))
    return [(state, label, counts.get(state, 0)) for state, label in Outbox.STATES]

"""Replaying a candidate template over emails the team already answered.

Before a new version goes live, an admin runs it over the last N approved replies in the
background; the report puts what the candidate wrote beside what reviewers actually sent,
with the intent agreement, a word-level similarity, the format compliance and the edit
distance a reviewer would have needed (beside the one they needed with the draft they had).
The candidate is activated by a person, after reading the report.
"""

from __future__ import annotations

import logging
from statistics import mean

from django.conf import settings
from django.db import models
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext_lazy

from drafts import search
from drafts.models import Draft, PromptTemplate, edit_distance
from inference.drafting import DraftOutcome

log = logging.getLogger(__name__)

# Flags about the reply's form (not about the email, such as prompt injection).
FORMAT_FLAGS = ("empty_reply", "placeholder_text", "language_mismatch", "too_long")


def similarity(a: str, b: str) -> float:
    """Shared words (Chinese as character pairs) over all words: 1 the same words."""
    words_a, words_b = set(search.document(a).split()), set(search.document(b).split())
    if not words_a and not words_b:
        return 1.0
    return round(len(words_a & words_b) / len(words_a | words_b), 4)


class TemplateReplay(models.Model):
    """One run of a candidate template over past emails, with its progress and report."""

    QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
    STATES = [
        (QUEUED, gettext_lazy("Queued")),
        (RUNNING, gettext_lazy("Running")),
        (DONE, gettext_lazy("Done")),
        (FAILED, gettext_lazy("Failed")),
    ]

    template = models.ForeignKey(PromptTemplate, on_delete=models.CASCADE, related_name="replays")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    state = models.CharField(max_length=10, choices=STATES, default=QUEUED)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    rows = models.JSONField(
        default=list, help_text="Per email: the candidate beside the reply sent."
    )
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Replay of {self.template} ({self.done}/{self.total})"

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 0

    @classmethod
    def start(cls, template: PromptTemplate, count: int, user: object) -> TemplateReplay:
        """Queue a replay over the last ``count`` approved replies."""
        from drafts.tasks import _enqueue

        drafts = Draft.objects.filter(status__in=Draft.APPROVED_STATUSES).order_by(
            "-decided_at", "-id"
        )
        ids = list(drafts.values_list("id", flat=True)[:count])
        replay = cls.objects.create(
            template=template,
            requested_by=user if getattr(user, "pk", None) else None,
            total=len(ids),
            rows=[{"draft": pk} for pk in ids],
        )
        _enqueue("drafts.replay.run_replay", replay.pk)
        return replay

    def summary(self) -> dict[str, float | int | None]:
        """The report's figures over the emails replayed so far."""
        rows = [r for r in self.rows if "candidate" in r]
        if not rows:
            return {"emails": 0}

        def average(key: str) -> float | None:
            values = [r[key] for r in rows if r.get(key) is not None]
            return round(mean(values), 3) if values else None

        return {
            "emails": len(rows),
            "intent_agreement": round(mean(r["intent_same"] for r in rows), 3),
            "similarity": average("similarity"),
            "format_ok": round(mean(not r["format_flags"] for r in rows), 3),
            "edit_distance": average("edit_distance"),
            "edit_distance_then": average("edit_distance_then"),
        }


def run_replay(replay_id: int) -> str:
    """The background job: draft every email of the replay in batches, saving progress."""
    from drafts import preview, tasks
    from inference.drafting import draft_replies

    claimed = TemplateReplay.objects.filter(pk=replay_id, state=TemplateReplay.QUEUED).update(
        state=TemplateReplay.RUNNING
    )
    if not claimed:
        return "skipped: not queued"
    replay = TemplateReplay.objects.select_related("template").get(pk=replay_id)
    prompts, _ = preview.prompts_for(replay.template)
    drafts = Draft.objects.select_related("message__mailbox", "message__thread").in_bulk(
        [r["draft"] for r in replay.rows]
    )
    size = max(tasks.batch_size(), 1)
    try:
        backend = tasks.configured_backend()
        for first in range(0, len(replay.rows), size):
            rows = replay.rows[first : first + size]
            chunk = [r for r in rows if r["draft"] in drafts]  # a draft deleted since: skipped
            batch = [drafts[r["draft"]] for r in chunk]
            if batch:
                emails = [tasks.email_input(d.message) for d in batch]
                profile = tasks.draft_settings(batch[0].message.mailbox)
                outcomes = draft_replies(backend, emails, prompts, profile)
                for row, draft, outcome in zip(chunk, batch, outcomes, strict=True):
                    row.update(_compare(draft, outcome))
            TemplateReplay.objects.filter(pk=replay_id).update(
                rows=replay.rows, done=F("done") + len(rows)
            )
    except Exception as exc:
        log.exception("Replay %s failed", replay_id)
        TemplateReplay.objects.filter(pk=replay_id).update(
            state=TemplateReplay.FAILED,
            error=f"{type(exc).__name__}: {exc}"[:4000],
            finished_at=timezone.now(),
        )
        return "failed"
    TemplateReplay.objects.filter(pk=replay_id).update(
        state=TemplateReplay.DONE, finished_at=timezone.now()
    )
    return f"done: {len(replay.rows)}"


def _compare(draft: Draft, outcome: DraftOutcome) -> dict[str, object]:
    """One report row: the candidate's reply beside the one the reviewer approved."""
    return {
        "subject": draft.message.subject,
        "sent": draft.reply_text,
        "candidate": outcome.reply,
        "intent_then": draft.intent,
        "intent_now": outcome.intent,
        "intent_same": outcome.intent == draft.intent,
        "similarity": similarity(outcome.reply, draft.reply_text),
        "edit_distance": round(edit_distance(outcome.reply, draft.reply_text), 4),
        "edit_distance_then": (
            round(edit_distance(draft.generated_text, draft.reply_text), 4)
            if draft.generated_text
            else None
        ),
        "format_flags": [f for f in outcome.flags if f.startswith(FORMAT_FLAGS)],
    }

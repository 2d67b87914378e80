"""ReplyHub's domain: staff profiles and drafts here; mailboxes, mail, prompt templates and
the rest in modules of their own, imported (and so registered) at the end of this one.

State changes are methods on the models; every transition that can race is a
conditional UPDATE that checks exactly one row changed.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy

from drafts import copies
from inference.drafting import INTENTS

ADMIN_GROUP = "ReplyHub admins"
# The intents as choices, labelled in both languages ("complaint · 投诉").
INTENT_CHOICES = [(key, f"{english} · {chinese}") for key, (english, chinese) in INTENTS.items()]


class StaffProfile(models.Model):
    """A staff member's role and interface language."""

    REVIEWER, SUPERVISOR, ADMIN = "reviewer", "supervisor", "admin"
    ROLES = [
        (REVIEWER, gettext_lazy("Reviewer: drafts of the mailboxes assigned to them")),
        (SUPERVISOR, gettext_lazy("Supervisor: all mailboxes, and the stats")),
        (ADMIN, gettext_lazy("Admin: also templates, mailboxes and users")),
    ]

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile"
    )
    role = models.CharField(max_length=20, choices=ROLES, default=REVIEWER)
    language = models.CharField(max_length=10, choices=settings.LANGUAGES, default="en")
    away = models.BooleanField(
        default=False,
        help_text="Away (holiday, leave): gets no new drafts where a mailbox shares them out.",
    )

    def __str__(self) -> str:
        return f"{self.user} ({self.role})"

    def save(self, *args: object, **kwargs: object) -> None:
        super().save(*args, **kwargs)
        self.sync_admin_access()

    @staticmethod
    def role_of(user: object) -> str:
        """The user's role; superusers are admins, users without a profile reviewers."""
        if getattr(user, "is_superuser", False):
            return StaffProfile.ADMIN
        profile = StaffProfile.objects.filter(user=user).only("role").first()
        return profile.role if profile else StaffProfile.REVIEWER

    def sync_admin_access(self) -> None:
        """The role decides who enters the Django admin: admins do, with the admin group's
        permissions (templates, mailboxes, sampling rules, users); others do not.
        Superusers keep what they have."""
        from drafts.access import admin_group

        user = self.user
        if user.is_superuser:
            return
        is_admin = self.role == self.ADMIN
        if user.is_staff != is_admin:
            user.is_staff = is_admin
            user.save(update_fields=["is_staff"])
        if is_admin:
            user.groups.add(admin_group())
        else:
            user.groups.remove(*user.groups.filter(name=ADMIN_GROUP))


class DraftQuerySet(models.QuerySet):
    """Every change to a draft bumps its ``version``; such an UPDATE also stamps
    ``updated_at``, so the API can list what changed since a time (claims, which change no
    version, leave it alone)."""

    def update(self, **kwargs: object) -> int:
        if "version" in kwargs:
            kwargs.setdefault("updated_at", timezone.now())
        return super().update(**kwargs)

    def overdue(self, now: datetime | None = None) -> DraftQuerySet:
        """Past the reply target and not yet approved or rejected (index ``draft_due``)."""
        return self.filter(status__in=Draft.UNDECIDED_STATUSES, due_at__lt=now or timezone.now())

    def in_drafting_order(self, first: int | None = None) -> DraftQuerySet:
        """Queued drafts in the order the workers take them: those a person asked for again
        (a reviewer waits on the draft page) by the time of asking, then draft ``first``
        (the task's own), then the rest oldest first."""
        own = models.Case(models.When(pk=first, then=0), default=1) if first else models.Value(1)
        return self.filter(status=Draft.QUEUED).order_by(
            models.F("requested_at").asc(nulls_last=True), own, "created_at", "id"
        )


class Draft(models.Model):
    """The model's proposed reply to one message, and its review."""

    QUEUED = "queued"
    GENERATING = "generating"
    FAILED = "failed"
    READY = "ready"
    APPROVED = "approved"
    SENDING = "sending"
    SENT = "sent"
    SEND_FAILED = "send_failed"
    SEND_UNCERTAIN = "send_uncertain"
    REJECTED = "rejected"
    STATUSES = [
        (QUEUED, gettext_lazy("Waiting for the model")),
        (GENERATING, gettext_lazy("Generating")),
        (FAILED, gettext_lazy("Generation failed")),
        (READY, gettext_lazy("Awaiting review")),
        (APPROVED, gettext_lazy("Approved, waiting to send")),
        (SENDING, gettext_lazy("Approved, sending")),
        (SENT, gettext_lazy("Sent")),
        (SEND_FAILED, gettext_lazy("Approved, sending failed")),
        (SEND_UNCERTAIN, gettext_lazy("Approved, delivery uncertain")),
        (REJECTED, gettext_lazy("Rejected")),
    ]
    # Not yet approved or rejected: what a reply target still applies to.
    UNDECIDED_STATUSES = [QUEUED, GENERATING, FAILED, READY]
    # Approved by a reviewer, whatever became of the sending.
    APPROVED_STATUSES = [APPROVED, SENDING, SENT, SEND_FAILED, SEND_UNCERTAIN]
    # The mail server has the reply, or may have it: too late to undo the approval.
    HANDED_OVER = [SENDING, SENT, SEND_UNCERTAIN]
    REJECT_REASONS = [
        ("wrong_intent", gettext_lazy("Wrong intent or misunderstood the email")),
        ("wrong_facts", gettext_lazy("Wrong or invented facts")),
        ("tone", gettext_lazy("Tone or format not acceptable")),
        ("needs_human", gettext_lazy("Needs a personal answer")),
        ("no_reply_needed", gettext_lazy("No reply needed")),
        ("other", gettext_lazy("Other")),
    ]

    message = models.OneToOneField("drafts.Message", on_delete=models.CASCADE, related_name="draft")
    # The message's mailbox, copied here so that a reviewer's queue needs no join (speed at
    # 100,000 drafts); a message never changes mailbox.
    mailbox = models.ForeignKey(
        "drafts.Mailbox", on_delete=models.CASCADE, related_name="drafts", editable=False
    )
    status = models.CharField(max_length=20, choices=STATUSES, default=QUEUED, db_index=True)
    intent = models.CharField(max_length=30, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    intent_scores = models.JSONField(default=dict, blank=True)
    fields = models.JSONField(default=dict, blank=True)
    language = models.CharField(max_length=5, blank=True)
    flags = models.JSONField(default=list, blank=True)
    flagged = models.GeneratedField(
        expression=~Q(flags=[]), output_field=models.BooleanField(), db_persist=True
    )
    generated_text = models.TextField(blank=True, help_text="The reply as the model wrote it.")
    reply_text = models.TextField(blank=True, help_text="The reply as it stands now.")
    cc = models.TextField(
        blank=True, help_text="Copies of the reply (Cc), one address per line (drafts/copies.py)."
    )
    template = models.ForeignKey(
        "drafts.PromptTemplate",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="drafts",
    )
    generation = models.JSONField(default=dict, blank=True, help_text="Engine, model, sampling.")
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    timings = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    version = models.PositiveIntegerField(default=1, help_text="Bumped on every change.")
    created_at = models.DateTimeField(auto_now_add=True)
    generating_since = models.DateTimeField(null=True, blank=True)
    requested_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When a person asked the model for this draft again (regenerate, retry); "
        "the workers draft such drafts before the rest of the queue.",
    )
    assigned_to = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_drafts",
    )
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="claimed_drafts",
        help_text="Who has the draft open for editing, until claimed_until.",
    )
    claimed_until = models.DateTimeField(null=True, blank=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    due_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the email must be answered by: its arrival plus the mailbox's reply "
        "target (for its intent). Empty: no target.",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    reject_reason = models.CharField(max_length=30, choices=REJECT_REASONS, blank=True)
    reject_note = models.TextField(blank=True)
    edit_distance = models.FloatField(
        null=True,
        blank=True,
        editable=False,
        help_text="How much the approved reply differs from the generated draft, 0 to 1 "
        "(whitespace ignored); set on approval.",
    )
    outgoing_message_id = models.CharField(max_length=998, blank=True)
    send_attempts = models.PositiveIntegerField(default=0)
    send_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # Null only for drafts older than the field until its migration fills it in.
    updated_at = models.DateTimeField(auto_now=True, null=True, editable=False)

    objects = DraftQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        # The queue's filters ride along in its indexes, so that counting and paging a
        # filtered queue reads the index alone, never the wide rows.
        indexes = [
            models.Index(fields=["updated_at", "id"], name="draft_updated"),
            models.Index(
                fields=["status", "created_at", "intent", "language", "flagged", "assigned_to"],
                name="draft_queue",
            ),
            models.Index(
                fields=[
                    *("mailbox", "status", "created_at"),
                    *("intent", "language", "flagged", "assigned_to"),
                ],
                name="draft_mailbox_queue",
            ),
            # /metrics: drafts written so far, and those of the last hour.
            models.Index(fields=["ready_at"], name="draft_ready_at"),
            # The queue's "due soonest" order and its overdue filter (with created_at, a page
            # of overdue drafts in order of arrival is sorted from the index alone); /metrics.
            models.Index(fields=["status", "due_at", "created_at", "id"], name="draft_due"),
        ]

    def __str__(self) -> str:
        return f"Draft for {self.message}"

    def save(self, *args: object, **kwargs: object) -> None:
        if self.mailbox_id is None:
            self.mailbox_id = self.message.mailbox_id
        if self._state.adding and self.due_at is None:
            self.due_at = self.message.mailbox.due_at(self.intent, timezone.now())
        super().save(*args, **kwargs)

    @property
    def intent_label(self) -> str:
        english, chinese = INTENTS.get(self.intent, (self.intent, ""))
        return f"{english} · {chinese}" if chinese else english

    @property
    def awaits_answer_by(self) -> datetime | None:
        """The due time, while the email still waits for an answer (not yet decided)."""
        return self.due_at if self.status in self.UNDECIDED_STATUSES else None

    @property
    def overdue(self) -> bool:
        due = self.awaits_answer_by
        return due is not None and due < timezone.now()

    @property
    def was_edited(self) -> bool:
        return _normalized(self.reply_text) != _normalized(self.generated_text)

    def edit_ratio(self) -> float:
        """How much of the generated text reviewers changed: 0 unchanged, 1 rewritten."""
        matcher = difflib.SequenceMatcher(None, self.generated_text, self.reply_text)
        return round(1 - matcher.ratio(), 4)

    def _transition(
        self,
        from_statuses: list[str],
        event: dict[str, object] | None = None,
        then: Callable[[Draft], None] | None = None,
        *,
        expected_version: int | None = None,
        **changes: object,
    ) -> bool:
        """Apply ``changes`` only if the row is still in one of ``from_statuses``.

        A conditional UPDATE: of two concurrent callers exactly one wins. With
        ``expected_version`` it also fails when anyone changed the draft since that version
        was read, and a reviewer's action fails while someone else holds the draft's claim.
        The winner's ReviewEvent and follow-up work (``then``) happen in one transaction.
        """
        changes["version"] = models.F("version") + 1
        rows = Draft.objects.filter(pk=self.pk, status__in=from_statuses)
        if expected_version is not None:
            rows = rows.filter(version=expected_version)
        user = (event or {}).get("user")
        if getattr(user, "pk", None):
            rows = rows.exclude(~Q(claimed_by=user), claimed_until__gt=timezone.now())
        with transaction.atomic():
            rows = rows.update(**changes)
            self.refresh_from_db()
            if rows == 1:
                if event:
                    ReviewEvent.objects.create(draft=self, **event)
                if then:
                    then(self)
        return rows == 1

    def claim_for_generation(self) -> bool:
        """Take a queued draft for generation; False if another worker has it."""
        return self._transition(
            [self.QUEUED], status=self.GENERATING, error="", generating_since=timezone.now()
        )

    def drafts_ahead(self) -> int:
        """How many queued drafts the workers will take before this queued one (see
        DraftQuerySet.in_drafting_order; a task's own draft is not known in advance)."""
        queued = Draft.objects.filter(status=self.QUEUED).exclude(pk=self.pk)
        if self.requested_at:
            earlier = Q(requested_at__lt=self.requested_at) | Q(
                requested_at=self.requested_at, id__lt=self.pk
            )
        else:
            earlier = (
                Q(requested_at__isnull=False)
                | Q(created_at__lt=self.created_at)
                | Q(created_at=self.created_at, id__lt=self.pk)
            )
        return queued.filter(earlier).count()

    CLAIM_MINUTES = 5

    def claim(self, user: object) -> bool:
        """Hold the draft for ``user`` for CLAIM_MINUTES, or renew their hold.

        Fails while someone else's claim runs; an expired claim is free to take.
        """
        now = timezone.now()
        free = Q(claimed_by__isnull=True) | Q(claimed_until__lte=now) | Q(claimed_by=user)
        rows = Draft.objects.filter(free, pk=self.pk, status=self.READY).update(
            claimed_by=user, claimed_until=now + timedelta(minutes=self.CLAIM_MINUTES)
        )
        self.refresh_from_db(fields=["claimed_by", "claimed_until"])
        return rows == 1

    def release(self, user: object, until: datetime | None = None) -> None:
        """Give up ``user``'s claim, if they hold it.

        With ``until``, only the claim that ran until then: a page being left must not
        release the claim its successor (a reload, the page after a save) has just renewed.
        """
        claims = Draft.objects.filter(pk=self.pk, claimed_by=user)
        if until is not None:
            claims = claims.filter(claimed_until=until)
        claims.update(claimed_by=None, claimed_until=None)

    def held_by(self) -> object | None:
        """The user whose claim on the draft is running, if any."""
        if self.claimed_by_id and self.claimed_until and self.claimed_until > timezone.now():
            return self.claimed_by
        return None

    def _copies_changed(self, cc: list[str] | None) -> tuple[dict, dict]:
        """(the change, the history's note) for a new list of copies; both empty when ``cc``
        is None or the same list."""
        if cc is None or copies.lines(cc) == self.cc:
            return {}, {}
        return {"cc": copies.lines(cc)}, {"note": "Cc: " + (", ".join(cc) or "none")}

    def save_edit(
        self, user: object, text: str, version: int | None = None, cc: list[str] | None = None
    ) -> bool:
        """Store a reviewer's edit of a draft awaiting review (of ``version``, if given), and
        its copies when ``cc`` is given."""
        event = {"user": user, "action": ReviewEvent.EDIT, "text_before": self.reply_text}
        changed, note = self._copies_changed(cc)
        return self._transition(
            [self.READY],
            event | {"text_after": text} | note,
            expected_version=version,
            reply_text=text,
            **changed,
        )

    def approve(
        self, user: object, text: str, version: int | None = None, cc: list[str] | None = None
    ) -> bool:
        """Approve ``text`` as the reply (with the copies ``cc``, when given) and queue it for
        sending (once)."""
        event = {"user": user, "action": ReviewEvent.APPROVE, "text_before": self.reply_text}
        changed, note = self._copies_changed(cc)
        return self._transition(
            [self.READY],
            event | {"text_after": text} | note,
            then=_queue_reply,
            expected_version=version,
            **changed,
            status=self.APPROVED,
            claimed_by=None,
            claimed_until=None,
            reply_text=text,
            decided_at=timezone.now(),
            decided_by=user,
            edit_distance=edit_distance(self.generated_text, text),
        )

    def reject(self, user: object, reason: str, note: str = "", version: int | None = None) -> bool:
        """Reject the draft; nothing is sent."""
        event = {
            "user": user,
            "action": ReviewEvent.REJECT,
            "text_before": self.reply_text,
            "reason": reason,
            "note": note,
        }
        return self._transition(
            [self.READY],
            event,
            expected_version=version,
            status=self.REJECTED,
            claimed_by=None,
            claimed_until=None,
            decided_at=timezone.now(),
            decided_by=user,
            reject_reason=reason,
            reject_note=note,
        )

    def reopen(self, user: object, hold: bool = True) -> bool:
        """Take a rejection back: the draft awaits review again with its text (held for
        ``user`` with ``hold``: they are about to answer it) and the stats forget the
        decision. Not once the retention period has removed the email's content."""
        from drafts import daily  # it imports this module

        if Message.objects.filter(pk=self.message_id, redacted_at__isnull=False).exists():
            return False
        decided = self.decided_at
        event = {
            "user": user,
            "action": ReviewEvent.REOPEN,
            "text_before": self.reply_text,
            "reason": self.reject_reason,
            "note": self.reject_note,
        }
        now = timezone.now()
        return self._transition(
            [self.REJECTED],
            event,
            then=lambda draft: daily.forget(decided),
            status=self.READY,
            decided_at=None,
            decided_by=None,
            reject_reason="",
            reject_note="",
            claimed_by=user if hold else None,
            claimed_until=now + timedelta(minutes=self.CLAIM_MINUTES) if hold else None,
        )

    def attach(
        self, user: object, files: list[tuple[str, str, bytes]], version: int | None
    ) -> bool:
        """Add files (name, content type, bytes) to the reply awaiting review.

        A change to the reply like an edit: it needs the version the reviewer saw and no one
        else's claim, and it makes the version new, so an approval read before it fails
        instead of sending what its reviewer did not see. Sizes are checked by the caller
        (drafts/reply_files.py).
        """

        def store(draft: Draft) -> None:
            ReplyAttachment.objects.bulk_create(
                ReplyAttachment(
                    draft=draft,
                    filename=name,
                    content_type=kind,
                    size=len(data),
                    data=data,
                    uploaded_by=user,
                )
                for name, kind, data in files
            )

        names = ", ".join(name for name, _kind, _data in files)
        event = {"user": user, "action": ReviewEvent.ATTACH, "note": names}
        return self._transition([self.READY], event, store, expected_version=version)

    def detach(self, user: object, attachment_id: int, version: int | None) -> bool:
        """Take a file off the reply awaiting review (guarded as ``attach``)."""
        found = self.reply_attachments.filter(pk=attachment_id).first()
        if found is None:
            return False
        event = {"user": user, "action": ReviewEvent.DETACH, "note": found.filename}
        return self._transition(
            [self.READY],
            event,
            lambda draft: ReplyAttachment.objects.filter(pk=found.pk).delete(),
            expected_version=version,
        )

    NOTE_MAX = 2000

    def add_note(self, user: object, text: str) -> ReviewEvent:
        """A note for colleagues in the draft's history ("asked finance, waiting"); never
        sent, and no change to the draft: an edit in progress keeps its version."""
        return ReviewEvent.objects.create(
            draft=self, user=user, action=ReviewEvent.NOTE, note=text[: self.NOTE_MAX]
        )

    def retry_generation(self, user: object | None) -> bool:
        """Queue a failed draft for the model again."""
        event = {"user": user, "action": ReviewEvent.RETRY, "note": self.error}
        return self._transition(
            [self.FAILED],
            event,
            _enqueue_generation,
            status=self.QUEUED,
            requested_at=timezone.now() if user else None,
        )

    INSTRUCTION_MAX = 500

    def regenerate(
        self,
        user: object,
        temperature: float | None = None,
        template: PromptTemplate | None = None,
        instruction: str = "",
        reply: str | None = None,
        version: int | None = None,
    ) -> bool:
        """Queue the draft for the model again, optionally at another temperature or template.

        With ``instruction`` ("shorter", "mention the refund policy") the model rewrites
        ``reply`` (the text in the reviewer's editor; by default the saved one) as asked.
        The request is kept in ``generation["requested"]`` until the worker honours it.
        With ``version``, refused if the draft changed since that version was read.
        """
        requested: dict[str, object] = {
            "temperature": temperature,
            "template": template.pk if template else None,
        }
        note = [f"{k} {v}" for k, v in requested.items() if v is not None]
        if instruction := instruction.strip()[: self.INSTRUCTION_MAX]:
            text = self.reply_text if reply is None else reply
            requested.update(instruction=instruction, revise=text)
            note.append(f"asked: {instruction}")
        event = {
            "user": user,
            "action": ReviewEvent.REGENERATE,
            "text_before": self.reply_text,
            "note": ", ".join(note),
        }
        return self._transition(
            [self.READY, self.FAILED],
            event,
            _enqueue_generation,
            expected_version=version,
            status=self.QUEUED,
            generation={**self.generation, "requested": requested},
            requested_at=timezone.now(),
            claimed_by=None,
            claimed_until=None,
        )

    def reassign(self, user: object, to: object | None) -> bool:
        """Give the draft to another reviewer (or to nobody) to answer."""
        event = {"user": user, "action": ReviewEvent.REASSIGN, "note": f"to {to or 'nobody'}"}
        return self._transition(
            [self.QUEUED, self.GENERATING, self.READY, self.FAILED],
            event,
            assigned_to=to,
            claimed_by=None,
            claimed_until=None,
        )

    @property
    def delivery(self) -> Outbox | None:
        """The latest outbox record of this draft's reply, if it was approved."""
        return self.deliveries.order_by("-id").first()


def _enqueue_generation(draft: Draft) -> None:
    from drafts.tasks import enqueue_generation  # drafts.tasks imports this module

    enqueue_generation(draft)


def _queue_reply(draft: Draft) -> None:
    from drafts.sending import queue_reply  # drafts.sending imports this module

    queue_reply(draft)


def _normalized(text: str) -> str:
    return " ".join(text.split())


def edit_distance(generated: str, approved: str) -> float:
    """How much of the generated reply was changed: 0 unchanged, 1 rewritten.

    Whitespace is normalized first, so that 0 means exactly what ``was_edited`` calls
    unchanged. Stored on approval: computing it per request over every draft is too slow.
    """
    matcher = difflib.SequenceMatcher(
        None, _normalized(generated), _normalized(approved), autojunk=False
    )
    return 1 - matcher.ratio()


# Mailboxes, mail, prompt templates, saved replies, blocked senders, the history, the outbox,
# template replays, daily stats totals and chat notifications live in modules of their own;
# importing them here registers their models with Django (the first ones first: the others
# import them from here). So do the REST API's tokens and callbacks (drafts/api/), the
# records of erasures, each user's two-step verification (drafts/two_factor.py), their
# signed-in sessions (drafts/signed_in.py) and their account activity.
from drafts.mailboxes import CalendarDay, Mailbox  # noqa: E402, F401

# isort: split
from drafts.mail import Attachment, Message, Thread  # noqa: E402, F401
from drafts.prompt_templates import PromptTemplate, SamplingRule  # noqa: E402, F401

# isort: split
from drafts.blocking import BlockedSender  # noqa: E402, F401
from drafts.history import ReviewEvent  # noqa: E402
from drafts.reply_files import ReplyAttachment  # noqa: E402
from drafts.saved_replies import SavedReply  # noqa: E402, F401

# isort: split
from drafts.account_activity import AccountEvent  # noqa: E402, F401
from drafts.api.callbacks import ApiCallback  # noqa: E402, F401
from drafts.api.tokens import ApiToken  # noqa: E402, F401
from drafts.daily import DayTotal, StatsDay  # noqa: E402, F401
from drafts.erasure import Erasure  # noqa: E402, F401
from drafts.health import WorkerHeartbeat  # noqa: E402, F401
from drafts.notify import Notification, NotificationChannel  # noqa: E402, F401
from drafts.outbox import Outbox  # noqa: E402
from drafts.replay import TemplateReplay  # noqa: E402, F401
from drafts.signed_in import SignedInSession  # noqa: E402, F401
from drafts.two_factor import RecoveryCode, TwoFactor  # noqa: E402, F401

"""The outbox: one record per approved reply, and the states its delivery goes through.

    queued ──► sending ──► sent
      ▲  │        │
      │  │        ├──► retry (4xx, connection lost before the message data) ──► sending …
      │  │        ├──► failed (5xx, or too many attempts; a person may send it again)
      │  │        └──► uncertain (the connection broke after the message data was sent,
      │  │              or a worker died while sending: never resent automatically)
      │  └──────────────► cancelled (a person undid the approval from queued, retry or
      │                    failed: the server never took the message; the draft is back
      │                    in review, and a new approval makes a new record)
      └───────────────── a person: "send again" from failed or uncertain

A new record waits settings.REPLYHUB_UNDO_SECONDS before its first attempt (its
``next_attempt_at``), so that the reviewer can undo the approval.

The bytes, recipient and Message-ID are fixed when the reply is approved, so every attempt
sends the same message, and a duplicate can be recognised by the customer's mail client.
Every transition is a conditional UPDATE: of two workers, or a task delivered twice,
exactly one claims the row (STYLE.md habit 7).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext_lazy

from drafts import copies, daily, notify
from drafts.models import Draft, Mailbox, ReviewEvent

# Waits before the 1st, 2nd, … retry after a temporary failure; the last repeats.
BACKOFF_SECONDS = [60, 300, 900, 3600, 3 * 3600, 6 * 3600]


class Outbox(models.Model):
    """One approved reply on its way to the customer."""

    QUEUED, SENDING, SENT = "queued", "sending", "sent"
    RETRY, FAILED, UNCERTAIN = "retry", "failed", "uncertain"
    CANCELLED = "cancelled"
    STATES = [
        (QUEUED, gettext_lazy("Queued")),
        (SENDING, gettext_lazy("Sending")),
        (SENT, gettext_lazy("Sent")),
        (RETRY, gettext_lazy("Failed for now; will retry")),
        (FAILED, gettext_lazy("Failed")),
        (UNCERTAIN, gettext_lazy("Uncertain: may have been delivered")),
        (CANCELLED, gettext_lazy("Not sent: the approval was undone")),
    ]
    # Not delivered and not being sent: the mail server never accepted the message, so a
    # person may still take the approval back.
    STOPPABLE = [QUEUED, RETRY, FAILED]
    # What the draft says while its reply is in each state.
    DRAFT_STATUS = {
        QUEUED: Draft.APPROVED,
        RETRY: Draft.APPROVED,
        SENDING: Draft.SENDING,
        SENT: Draft.SENT,
        FAILED: Draft.SEND_FAILED,
        UNCERTAIN: Draft.SEND_UNCERTAIN,
        CANCELLED: Draft.READY,
    }

    draft = models.ForeignKey(Draft, on_delete=models.CASCADE, related_name="deliveries")
    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="outbox")
    message_id = models.CharField(max_length=500, unique=True)
    sender = models.CharField(max_length=320, help_text="Envelope sender: the mailbox address.")
    recipient = models.CharField(max_length=320)
    cc = models.TextField(blank=True, help_text="Copies (Cc), one address per line.")
    raw = models.BinaryField(help_text="The message exactly as it is sent, built at approval.")
    state = models.CharField(max_length=10, choices=STATES, default=QUEUED, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    sending_since = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    server_reply = models.TextField(blank=True, help_text="The SMTP server's last answer.")
    sent_at = models.DateTimeField(null=True, blank=True)
    copied_to_sent = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "outbox"
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["mailbox", "state", "sent_at"])]

    def __str__(self) -> str:
        return f"{self.message_id} → {self.recipient} ({self.state})"

    @property
    def copies(self) -> list[str]:
        """The addresses the reply is copied to (Cc)."""
        return copies.of(self.cc)

    # -- transitions ------------------------------------------------------------------

    def _move(self, from_states: list[str], event: dict | None = None, **changes: object) -> bool:
        """Change state only if the row is still in one of ``from_states``; keep the draft's
        status in step, in the same transaction, with the event recorded."""
        with transaction.atomic():
            moved = Outbox.objects.filter(pk=self.pk, state__in=from_states).update(**changes)
            if moved:
                self.refresh_from_db()
                problem = self.state in (self.FAILED, self.UNCERTAIN)
                Draft.objects.filter(pk=self.draft_id).update(
                    status=self.DRAFT_STATUS[self.state],
                    send_error=self.last_error if problem else "",
                    sent_at=self.sent_at,
                    version=F("version") + 1,
                )
                if event:
                    ReviewEvent.objects.create(draft_id=self.draft_id, **event)
                if problem:  # chat channels hear of it; only rows and tasks are written here
                    notify.send_failed(self)
                # The stats of the decision's day count sent and failed replies.
                daily.forget(
                    Draft.objects.values_list("decided_at", flat=True).get(pk=self.draft_id)
                )
        return bool(moved)

    def claim(self) -> bool:
        """Take a due reply for sending; False if another worker has it or it is not due."""
        now = timezone.now()
        with transaction.atomic():
            # One sender per mailbox at a time decides about the rate limit (PostgreSQL
            # locks the row; SQLite serialises every write anyway).
            mailbox = Mailbox.objects.select_for_update().get(pk=self.mailbox_id)
            due = Outbox.objects.filter(
                pk=self.pk, state__in=[self.QUEUED, self.RETRY], next_attempt_at__lte=now
            )
            if not due.exists():
                return False
            wait = self.rate_limit_wait(mailbox, now)
            if wait:
                due.update(next_attempt_at=now + wait)
                return False
            return self._move(
                [self.QUEUED, self.RETRY],
                state=self.SENDING,
                attempts=F("attempts") + 1,
                sending_since=now,
            )

    @staticmethod
    def rate_limit_wait(mailbox: Mailbox, now: object) -> timedelta | None:
        """How long to wait before the mailbox may send again; None when it may now."""
        limit = mailbox.send_limit_per_minute
        if not limit:
            return None
        window = now - timedelta(minutes=1)
        recent = list(
            Outbox.objects.filter(mailbox=mailbox, sent_at__gt=window)
            .order_by("sent_at")
            .values_list("sent_at", flat=True)
        )
        busy = Outbox.objects.filter(mailbox=mailbox, state=Outbox.SENDING).count()
        if len(recent) + busy < limit:
            return None
        oldest = recent[0] if recent else now
        return max(oldest + timedelta(minutes=1) - now, timedelta(seconds=5))

    def mark_sent(self, reply: str) -> bool:
        event = {"action": ReviewEvent.SENT, "note": f"{self.recipient}: {reply}"[:2000]}
        return self._move(
            [self.SENDING],
            event,
            state=self.SENT,
            sent_at=timezone.now(),
            server_reply=reply[:2000],
            last_error="",
        )

    def mark_temporary_failure(self, error: str) -> bool:
        """Retry later with backoff; after MAX attempts it is a failure a person sees."""
        if self.attempts >= settings.REPLYHUB_SEND_MAX_ATTEMPTS:
            return self.mark_failed(f"{error} (gave up after {self.attempts} attempts)")
        delay = BACKOFF_SECONDS[min(self.attempts, len(BACKOFF_SECONDS)) - 1]
        return self._move(
            [self.SENDING],
            state=self.RETRY,
            next_attempt_at=timezone.now() + timedelta(seconds=delay),
            last_error=error[:2000],
            sending_since=None,
        )

    def mark_failed(self, error: str) -> bool:
        event = {"action": ReviewEvent.SEND_FAILED, "note": error[:2000]}
        return self._move(
            [self.SENDING], event, state=self.FAILED, last_error=error[:2000], sending_since=None
        )

    def mark_uncertain(self, error: str) -> bool:
        """The server may have the message: nobody resends it without a person's say."""
        event = {"action": ReviewEvent.SEND_UNCERTAIN, "note": error[:2000]}
        return self._move([self.SENDING], event, state=self.UNCERTAIN, last_error=error[:2000])

    def send_again(self, user: object) -> bool:
        """A person decided: send the same message (same Message-ID) once more, with a
        fresh series of attempts (the history keeps the earlier ones)."""
        event = {"user": user, "action": ReviewEvent.RETRY_SEND, "note": self.last_error}
        moved = self._move(
            [self.FAILED, self.UNCERTAIN],
            event,
            state=self.QUEUED,
            attempts=0,
            next_attempt_at=timezone.now(),
            sending_since=None,
        )
        if moved:
            from drafts.tasks import enqueue_delivery

            enqueue_delivery(self)
        return moved

    @property
    def undo_until(self) -> datetime | None:
        """When the undo window of a reply not yet tried ends; None once it was tried."""
        if self.state == self.QUEUED and self.attempts == 0:
            return self.next_attempt_at
        return None

    def stop(self, user: object, hold: bool = True) -> bool:
        """A person takes the approval back before the reply went out (from STOPPABLE):
        nothing is sent, and the draft is back in review with its text (held for them, with
        ``hold``: they are about to edit it). False when it is too late (being sent, or
        sent) or someone else stopped it first."""
        event = {
            "user": user,
            "action": ReviewEvent.UNDO,
            "text_before": Draft.objects.values_list("reply_text", flat=True).get(pk=self.draft_id),
            "note": f"{self.message_id}: {self.state}",
        }
        with transaction.atomic():
            if not self._move(self.STOPPABLE, event, state=self.CANCELLED, sending_since=None):
                return False
            # Undecided again: the stats forget the decision (_move recounted its day).
            Draft.objects.filter(pk=self.draft_id).update(
                decided_at=None,
                decided_by=None,
                edit_distance=None,
                outgoing_message_id="",
                claimed_by=user if hold else None,
                claimed_until=(
                    timezone.now() + timedelta(minutes=Draft.CLAIM_MINUTES) if hold else None
                ),
            )
            from drafts.tasks import unschedule_delivery

            unschedule_delivery(self)
        return True

    def confirm_delivered(self, user: object) -> bool:
        """A person checked (the customer has it, or the server's log says so)."""
        event = {"user": user, "action": ReviewEvent.CONFIRM_SENT, "note": self.last_error}
        return self._move(
            [self.UNCERTAIN], event, state=self.SENT, sent_at=timezone.now(), sending_since=None
        )

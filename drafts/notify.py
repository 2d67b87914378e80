"""Chat notifications: DingTalk robots, WeCom group robots and signed JSON webhooks.

Each mailbox may have notification channels (edited in the admin). Four events reach them:

- *drafts awaiting review*: the schedule `sweep_notifications` runs every minute and sends
  each channel ONE message about the drafts that became ready since its last digest
  ("5 new drafts: 2 complaints, 1 inquiry, …"), never the same draft twice;
- *a send failed*: `Outbox._move` calls `send_failed` when a reply becomes failed or
  uncertain, in the transaction that records it;
- *emails reaching their reply target*: the same schedule sends ONE message about the
  unanswered emails that became due (or will, within the channel's warning time) since its
  last look, naming the first few;
- *queue over threshold*: the same schedule counts the drafts awaiting review; past the
  channel's threshold it notifies once, and again only after the queue went back under it.

Every outgoing message is a `Notification` row (its payload fixed when it is created) that a
django-q2 task delivers: claimed with a conditional UPDATE, posted once with a timeout,
retried after 1, 5, 15 and 60 minutes, then failed. Nothing here talks to a chat server
inside ingestion, drafting, an approval or a send: those only store rows and queue tasks,
so a dead chat server can never block or fail them. The transports (how each chat tool
wants its message) live in `drafts.notify_transports`.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.db import models, transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.translation import gettext_lazy

from drafts import sealing
from drafts.models import Draft, Mailbox

if TYPE_CHECKING:
    from drafts.notify_transports import Transport
    from drafts.outbox import Outbox

log = logging.getLogger(__name__)

# Waits before the 2nd, 3rd, … attempt; after the last one the notification has failed.
BACKOFF_MINUTES = [1, 5, 15, 60]
# A draft is stamped ready a moment before its row commits; a digest also looks this far
# back, for drafts that committed after the previous digest ran (the ids it named are kept
# in its payload, so none is announced twice).
DIGEST_OVERLAP = timedelta(minutes=5)
ATTEMPT_LOG_SIZE = 20

TRANSPORTS = {
    "dingtalk": "drafts.notify_transports.DingTalk",
    "wecom": "drafts.notify_transports.WeCom",
    "webhook": "drafts.notify_transports.Webhook",
}


class NotificationChannel(models.Model):
    """Where a mailbox's notifications go: a chat robot or a webhook, and which events."""

    DINGTALK, WECOM, WEBHOOK = "dingtalk", "wecom", "webhook"
    KINDS = [
        (DINGTALK, gettext_lazy("DingTalk custom robot")),
        (WECOM, gettext_lazy("WeCom group robot")),
        (WEBHOOK, gettext_lazy("Webhook (signed JSON)")),
    ]

    mailbox = models.ForeignKey(
        Mailbox, on_delete=models.CASCADE, related_name="notification_channels"
    )
    name = models.CharField(max_length=100, help_text="For you, e.g. “Support team group”.")
    kind = models.CharField(max_length=10, choices=KINDS)
    # The robot URLs carry their access tokens: sealed at rest, as the secret is.
    url = sealing.SealedURLField(
        "URL",
        max_length=1000,
        help_text="DingTalk: https://oapi.dingtalk.com/robot/send?access_token=… · "
        "WeCom: https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=… · "
        "Webhook: your endpoint (https://…).",
    )
    secret = sealing.SealedCharField(
        max_length=200,
        blank=True,
        help_text="DingTalk: the 加签 secret (starts with SEC), or empty if the robot checks "
        "keywords or IP addresses instead. WeCom: leave empty. Webhook: required; "
        "requests are signed with it (X-ReplyHub-Signature).",
    )
    enabled = models.BooleanField(default=True)
    on_drafts_ready = models.BooleanField(
        gettext_lazy("New drafts awaiting review"),
        default=True,
        help_text="At most one message a minute, with the new drafts counted per intent.",
    )
    on_send_failed = models.BooleanField(
        gettext_lazy("A reply could not be sent"),
        default=True,
        help_text="When a reply fails for good or its delivery is uncertain.",
    )
    on_queue_over = models.BooleanField(
        gettext_lazy("Review queue over the threshold"),
        default=False,
        help_text="Once when more drafts than the threshold await review; again only after "
        "the queue has gone back under it.",
    )
    queue_threshold = models.PositiveIntegerField(default=50)
    on_drafts_due = models.BooleanField(
        gettext_lazy("Emails reaching their reply target"),
        default=True,
        help_text="At most one message a minute about the emails that have just become due "
        "(or will within the warning time) and are still unanswered; only where the mailbox "
        "has a reply target.",
    )
    due_warning_minutes = models.PositiveIntegerField(
        default=0,
        validators=[MaxValueValidator(24 * 60)],
        help_text="How long before the target to warn, in minutes (at most a day); 0: once "
        "an email is overdue.",
    )
    language = models.CharField(
        max_length=10,
        choices=settings.LANGUAGES,
        default="zh-hans",
        help_text="Language of the messages.",
    )
    # The digest's watermark: drafts ready before it have been considered. Drafts ready
    # before ``digest_from`` are never announced: it moves while the channel or its digest
    # is off, so switching them on announces what is new from then on.
    digest_until = models.DateTimeField(default=timezone.now, editable=False)
    digest_from = models.DateTimeField(default=timezone.now, editable=False)
    # The reply-target alert's watermark: emails whose alert time (due minus the warning)
    # came before it have been considered; kept current while the alert is off.
    due_until = models.DateTimeField(default=timezone.now, editable=False)
    # Set while the queue is over the threshold and the channel has been told.
    queue_alerted = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["mailbox", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    def clean(self) -> None:
        """Refuse a channel that could never deliver, naming the field and the problem."""
        from drafts.notify_transports import url_problem

        errors: dict[str, str] = {}
        if self.url and self.kind and (problem := url_problem(self.kind, self.url)):
            errors["url"] = problem
        secret = self.secret
        if secret != secret.strip() or any(c.isspace() for c in secret):
            errors["secret"] = "The secret contains spaces or line breaks; paste it exactly."
        elif self.kind == self.WECOM and secret:
            errors["secret"] = (
                "WeCom group robots do not sign messages: leave the secret empty "
                "(the key in the URL is the credential)."
            )
        elif self.kind == self.WEBHOOK and not secret:
            errors["secret"] = "A webhook needs a secret: every request is signed with it."
        if self.on_queue_over and not self.queue_threshold:
            errors["queue_threshold"] = "Give a threshold of at least 1 for the queue event."
        if errors:
            raise ValidationError(errors)

    def unreadable(self) -> list[str]:
        """The sealed fields that no configured key opens (SECRET_KEY changed)."""
        return [
            str(self._meta.get_field(name).verbose_name)
            for name in ("url", "secret")
            if sealing.lost(getattr(self, name))
        ]

    def transport(self) -> Transport:
        """The channel's transport; TransportError when its URL or secret cannot be read."""
        from drafts.notify_transports import TransportError

        if unreadable := self.unreadable():
            raise TransportError(
                f"The channel's {' and '.join(unreadable)} can no longer be read: SECRET_KEY "
                "changed and the old key is not in SECRET_KEY_FALLBACKS. Enter them again "
                "in the admin."
            )
        return import_string(TRANSPORTS[self.kind])(self)

    def announce(self, event: str, payload: dict) -> Notification:
        """Store a notification for this channel and queue its delivery (with the caller's
        transaction, when there is one: the event and its notification exist together)."""
        from drafts.tasks import enqueue_notification

        notification = Notification.objects.create(channel=self, event=event, payload=payload)
        enqueue_notification(notification)
        return notification


class Notification(models.Model):
    """One message to one channel, kept until it is delivered or has failed for good."""

    DRAFTS_READY, SEND_FAILED = "drafts_ready", "send_failed"
    QUEUE_OVER, TEST = "queue_over_threshold", "test"
    DRAFTS_DUE = "drafts_due"
    EVENTS = [
        (DRAFTS_READY, gettext_lazy("New drafts awaiting review")),
        (DRAFTS_DUE, gettext_lazy("Emails reaching their reply target")),
        (SEND_FAILED, gettext_lazy("A reply could not be sent")),
        (QUEUE_OVER, gettext_lazy("Review queue over the threshold")),
        (TEST, gettext_lazy("Test message")),
    ]
    PENDING, SENT, FAILED = "pending", "sent", "failed"
    STATES = [
        (PENDING, gettext_lazy("Pending")),
        (SENT, gettext_lazy("Sent")),
        (FAILED, gettext_lazy("Failed")),
    ]

    channel = models.ForeignKey(
        NotificationChannel, on_delete=models.CASCADE, related_name="notifications"
    )
    event = models.CharField(max_length=30, choices=EVENTS)
    payload = models.JSONField(default=dict, help_text="What the message says, as data.")
    state = models.CharField(max_length=10, choices=STATES, default=PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True)
    attempt_log = models.JSONField(
        default=list, blank=True, help_text="Each attempt: when, and what the server answered."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["state", "next_attempt_at"]),
            models.Index(fields=["channel", "event", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.get_event_display()} → {self.channel} ({self.state})"

    def claim(self) -> bool:
        """Take a due notification for one attempt; False if another worker has it.

        The claim moves ``next_attempt_at`` past the attempt's longest possible duration, so
        the sweep leaves it alone while it runs, and retries it if the worker dies.
        """
        now = timezone.now()
        lease = now + timedelta(seconds=settings.REPLYHUB_NOTIFY_TIMEOUT * 3 + 60)
        claimed = Notification.objects.filter(
            pk=self.pk, state=self.PENDING, next_attempt_at__lte=now
        ).update(attempts=F("attempts") + 1, next_attempt_at=lease)
        if claimed:
            self.refresh_from_db()
        return bool(claimed)

    def attempt(self) -> str:
        """Claim, post once, record the outcome: "sent", "retry: …", "failed: …" or
        "skipped" (not due, or another worker has it)."""
        from drafts.notify_transports import TransportError

        if not self.claim():
            return "skipped: not due, or another worker has it"
        try:
            answer = self.channel.transport().send(self)
        except TransportError as exc:
            return self._failed_attempt(str(exc))
        except Exception as exc:  # a bug must not leave the row claimed and retried forever
            log.exception("Notification %s: the transport failed", self.pk)
            return self._failed_attempt(f"{type(exc).__name__}: {exc}")
        now = timezone.now()
        Notification.objects.filter(pk=self.pk, state=self.PENDING).update(
            state=self.SENT, sent_at=now, last_error="", attempt_log=self._logged(now, answer)
        )
        log.info("Notification %s to %s: sent (%s)", self.pk, self.channel, answer)
        return "sent"

    def _failed_attempt(self, error: str) -> str:
        now = timezone.now()
        changes: dict[str, object] = {
            "last_error": error[:2000],
            "attempt_log": self._logged(now, error),
        }
        if self.attempts > len(BACKOFF_MINUTES):
            changes["state"] = self.FAILED
            outcome = f"failed: {error} (gave up after {self.attempts} attempts)"
        else:
            wait = BACKOFF_MINUTES[self.attempts - 1]
            changes["next_attempt_at"] = now + timedelta(minutes=wait)
            outcome = f"retry in {wait} min: {error}"
        Notification.objects.filter(pk=self.pk, state=self.PENDING).update(**changes)
        log.warning(
            "Notification %s to %s: attempt %d: %s", self.pk, self.channel, self.attempts, outcome
        )
        return outcome

    def _logged(self, at: datetime, detail: str) -> list[dict]:
        entry = {"at": at.isoformat(), "attempt": self.attempts, "answer": detail[:500]}
        return [*self.attempt_log, entry][-ATTEMPT_LOG_SIZE:]


# -- events -------------------------------------------------------------------------------


def absolute_url(path: str) -> str:
    """``path`` under REPLYHUB_BASE_URL: chat messages need links that work from outside."""
    return settings.REPLYHUB_BASE_URL.rstrip("/") + path


def _mailbox_data(mailbox: Mailbox) -> dict:
    return {"id": mailbox.pk, "name": mailbox.name, "address": mailbox.address}


def queue_url(mailbox: Mailbox) -> str:
    return absolute_url(f"{reverse('queue')}?mailbox={mailbox.pk}")


def send_failed(outbox: Outbox) -> None:
    """Announce a reply that failed or whose delivery is uncertain to its mailbox's channels.

    Called by `Outbox._move` inside its transaction. Only rows are written and tasks queued;
    a savepoint keeps any trouble here from undoing the outbox's own record.
    """
    try:
        with transaction.atomic():
            channels = NotificationChannel.objects.filter(
                mailbox_id=outbox.mailbox_id, enabled=True, on_send_failed=True
            ).select_related("mailbox")
            for channel in channels:
                draft = outbox.draft
                channel.announce(
                    Notification.SEND_FAILED,
                    {
                        "event": Notification.SEND_FAILED,
                        "mailbox": _mailbox_data(channel.mailbox),
                        "draft": {
                            "id": outbox.draft_id,
                            "subject": draft.message.subject,
                            "recipient": outbox.recipient,
                            "message_id": outbox.message_id,
                            "state": outbox.state,
                            "error": outbox.last_error,
                            "attempts": outbox.attempts,
                            "url": absolute_url(reverse("draft", args=[outbox.draft_id])),
                        },
                    },
                )
    except Exception:
        log.exception("Outbox %s: could not queue the failure notifications", outbox.pk)


def _advance(channel: NotificationChannel, watermark: str, since: datetime, now: datetime) -> bool:
    """Move one of the channel's watermarks from ``since`` to ``now`` with a conditional
    UPDATE; False when another sweep moved it first (that one sends the message)."""
    moved = NotificationChannel.objects.filter(pk=channel.pk, **{watermark: since}).update(
        **{watermark: now}
    )
    setattr(channel, watermark, now)
    return bool(moved)


def digest(channel: NotificationChannel, now: datetime | None = None) -> Notification | None:
    """One message about the drafts that became ready since the channel's last digest.

    The watermark moves with a conditional UPDATE: of two sweeps at once, one sends.
    """
    now = now or timezone.now()
    since = channel.digest_until
    window = max(since - DIGEST_OVERLAP, channel.digest_from)
    ready = list(
        Draft.objects.filter(
            mailbox_id=channel.mailbox_id,
            status=Draft.READY,
            ready_at__gt=window,
            ready_at__lte=now,
        )
        .order_by("ready_at", "id")
        .values_list("pk", "intent")
    )
    announced: set[int] = set()
    if ready:
        for payload in channel.notifications.filter(
            event=Notification.DRAFTS_READY, created_at__gte=window
        ).values_list("payload", flat=True):
            announced.update(payload.get("draft_ids", []))
    new = [(pk, intent) for pk, intent in ready if pk not in announced]
    with transaction.atomic():
        if not _advance(channel, "digest_until", since, now) or not new:
            return None
        counts = Counter(intent or "unclassified" for _, intent in new)
        return channel.announce(
            Notification.DRAFTS_READY,
            {
                "event": Notification.DRAFTS_READY,
                "mailbox": _mailbox_data(channel.mailbox),
                "total": len(new),
                "counts": dict(counts.most_common()),
                "draft_ids": [pk for pk, _ in new],
                "url": queue_url(channel.mailbox),
            },
        )


DUE_LISTED = 5  # emails named in a reply-target alert; the rest are counted


def due_alert(channel: NotificationChannel, now: datetime | None = None) -> Notification | None:
    """One message about the unanswered emails whose reply target has come within the
    channel's warning time since the last sweep (overdue ones, with no warning time), each
    announced once.

    The watermark moves with a conditional UPDATE, as the digest's: of two sweeps, one sends.
    """
    now = now or timezone.now()
    since = channel.due_until
    lead = timedelta(minutes=channel.due_warning_minutes)
    # Its alert time came since the last look, or it arrived since then already inside the
    # warning time (a 1-hour target, a 2-hour warning) or late (old mail imported).
    due = Draft.objects.filter(
        Q(due_at__gt=since + lead) | Q(created_at__gt=since),
        mailbox_id=channel.mailbox_id,
        status__in=Draft.UNDECIDED_STATUSES,
        due_at__lte=now + lead,
    ).order_by("due_at", "id")
    found = list(due.values_list("pk", "due_at", "message__subject"))
    with transaction.atomic():
        if not _advance(channel, "due_until", since, now) or not found:
            return None
        return channel.announce(
            Notification.DRAFTS_DUE,
            {
                "event": Notification.DRAFTS_DUE,
                "mailbox": _mailbox_data(channel.mailbox),
                "total": len(found),
                "warning_minutes": channel.due_warning_minutes,
                "drafts": [
                    {
                        "id": pk,
                        "subject": subject,
                        "due_at": due_at.isoformat(),
                        "url": absolute_url(reverse("draft", args=[pk])),
                    }
                    for pk, due_at, subject in found[:DUE_LISTED]
                ],
                "draft_ids": [pk for pk, _, _ in found],
                "url": absolute_url(f"{reverse('queue')}?mailbox={channel.mailbox_id}&order=due"),
            },
        )


def check_queue(channel: NotificationChannel, waiting: int) -> Notification | None:
    """Notify once when ``waiting`` passes the threshold; re-arm once it is back under."""
    threshold = channel.queue_threshold
    if waiting < threshold and channel.queue_alerted:
        NotificationChannel.objects.filter(pk=channel.pk).update(queue_alerted=False)
    if waiting <= threshold or channel.queue_alerted:
        return None
    with transaction.atomic():
        if not NotificationChannel.objects.filter(pk=channel.pk, queue_alerted=False).update(
            queue_alerted=True
        ):
            return None
        return channel.announce(
            Notification.QUEUE_OVER,
            {
                "event": Notification.QUEUE_OVER,
                "mailbox": _mailbox_data(channel.mailbox),
                "waiting": waiting,
                "threshold": threshold,
                "url": queue_url(channel.mailbox),
            },
        )


def send_test(channel: NotificationChannel) -> tuple[Notification, str]:
    """A test message, delivered now (the admin's "Send a test message"); its outcome.

    Tried once: a test that failed is not retried into the group later."""
    notification = Notification.objects.create(
        channel=channel,
        event=Notification.TEST,
        payload={
            "event": Notification.TEST,
            "mailbox": _mailbox_data(channel.mailbox),
            "url": queue_url(channel.mailbox),
        },
    )
    outcome = notification.attempt()
    Notification.objects.filter(pk=notification.pk, state=Notification.PENDING).update(
        state=Notification.FAILED
    )
    return notification, outcome


# -- tasks --------------------------------------------------------------------------------


def deliver_notification(notification_id: int) -> str:
    """The delivery task: one attempt at one notification."""
    notification = (
        Notification.objects.select_related("channel__mailbox").filter(pk=notification_id).first()
    )
    if notification is None:
        return "skipped: no such notification"
    if not notification.channel.enabled:
        Notification.objects.filter(pk=notification.pk, state=Notification.PENDING).update(
            state=Notification.FAILED, last_error="The channel was disabled before delivery."
        )
        return "failed: the channel is disabled"
    return notification.attempt()


def sweep_notifications() -> str:
    """Every minute: digests of new drafts, queue thresholds, and retries that are due."""
    from drafts.tasks import enqueue_notification

    now = timezone.now()
    # Channels that skip digests keep their watermarks current, so turning them on later
    # announces what is new from then on, not everything since they were turned off.
    NotificationChannel.objects.filter(Q(enabled=False) | Q(on_drafts_ready=False)).update(
        digest_until=now, digest_from=now
    )
    NotificationChannel.objects.filter(Q(enabled=False) | Q(on_drafts_due=False)).update(
        due_until=now
    )
    channels = NotificationChannel.objects.filter(enabled=True).select_related("mailbox")
    digests = alerts = dues = 0
    waiting: dict[int, int] = {}
    for channel in channels:
        if channel.on_drafts_ready:
            digests += digest(channel, now) is not None
        if channel.on_drafts_due:
            dues += due_alert(channel, now) is not None
        if channel.on_queue_over:
            if channel.mailbox_id not in waiting:
                waiting[channel.mailbox_id] = Draft.objects.filter(
                    mailbox_id=channel.mailbox_id, status=Draft.READY
                ).count()
            alerts += check_queue(channel, waiting[channel.mailbox_id]) is not None
    # A retry is queued when it is due; a first attempt has its own task, and one still
    # waiting a minute later lost it. A second task is harmless: claims are atomic.
    due = Notification.objects.filter(
        Q(attempts__gt=0) | Q(created_at__lte=now - timedelta(minutes=1)),
        state=Notification.PENDING,
        next_attempt_at__lte=now,
    )
    retries = 0
    for notification in due:
        enqueue_notification(notification)
        retries += 1
    return (
        f"{digests} digests, {dues} reply-target alerts, {alerts} queue alerts, "
        f"{retries} queued again"
    )

"""The retention period: emails handled more than REPLYHUB_RETENTION_DAYS ago lose their
content, and the numbers about them stay.

Every night (and on ``manage.py apply_retention``) each message stored more than that many
days ago whose draft is finished (sent, rejected, failed to generate or to send, or it never
had one) is *redacted*: its raw bytes, headers, addresses, subject and text, its attachments
(and the files reviewers attached to its reply),
its draft's texts and extracted fields, the texts in its history, its outbox record's bytes
and recipient, the quotes of other records (drafts.erasure.drop_quotes) and its search-index
entry are removed. What remains is what the stats count (status, intent, who decided, when,
how much was edited, whether it was sent in time), so the stats of those days do not change.
A conversation whose messages are all redacted loses its subject and customer address too.

Drafts still in work (waiting for the model or a reviewer, approved and not yet sent, or
of uncertain delivery) are never redacted, however old. The SHA-256 of the raw message stays,
so importing the same mailbox export again does not bring the mail back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from drafts.erasure import drop_quotes, leaving_no_trace
from drafts.models import Attachment, Draft, Message, ReplyAttachment, ReviewEvent, Thread
from drafts.outbox import Outbox

# A draft in any other status is still in someone's work.
FINISHED = [Draft.SENT, Draft.REJECTED, Draft.FAILED, Draft.SEND_FAILED]
BATCH = 500  # messages per transaction


@dataclass
class Report:
    messages: int = 0
    drafts: int = 0
    attachments: int = 0
    conversations: int = 0

    def __str__(self) -> str:
        return (
            f"{self.messages} messages, {self.drafts} drafts, {self.attachments} attachments, "
            f"{self.conversations} conversations redacted"
        )


def due(days: int, now: object = None) -> QuerySet[Message]:
    """Messages stored more than ``days`` days ago, finished, and not yet redacted."""
    cutoff = (now or timezone.now()) - timedelta(days=days)
    in_work = Draft.objects.filter(message=OuterRef("pk")).exclude(status__in=FINISHED)
    return (
        Message.objects.filter(received_at__lt=cutoff, redacted_at__isnull=True)
        .exclude(Exists(in_work))
        .order_by("pk")
    )


def redact(message_ids: list[int]) -> Report:
    """Remove the content of these messages and of what hangs on them (one transaction)."""
    now = timezone.now()
    drafts = Draft.objects.filter(message_id__in=message_ids)
    draft_ids = list(drafts.values_list("pk", flat=True))
    thread_ids = set(
        Message.objects.filter(pk__in=message_ids, thread__isnull=False).values_list(
            "thread_id", flat=True
        )
    )
    with transaction.atomic():
        drop_quotes(draft_ids)
        attachments = Attachment.objects.filter(message_id__in=message_ids).delete()[0]
        attachments += ReplyAttachment.objects.filter(draft_id__in=draft_ids).delete()[0]
        Message.objects.filter(pk__in=message_ids).update(
            **dict.fromkeys(("message_id", "in_reply_to", "references", "subject"), ""),
            **dict.fromkeys(("from_name", "from_address", "reply_to", "to", "cc"), ""),
            **dict.fromkeys(("text", "model_text", "html", "search_text"), ""),
            raw=b"",
            headers=[],
            defects=[],
            redacted_at=now,
        )
        # Not an edit (no new version): the draft keeps what the stats count.
        Draft.objects.filter(pk__in=draft_ids).update(
            generated_text="",
            reply_text="",
            cc="",
            fields={},
            generation={},
            error="",
            send_error="",
            reject_note="",
            outgoing_message_id="",
        )
        ReviewEvent.objects.filter(draft_id__in=draft_ids).update(
            text_before="", text_after="", note=""
        )
        Outbox.objects.filter(draft_id__in=draft_ids).update(
            raw=b"", recipient="", cc="", sender="", server_reply="", last_error=""
        )
        # A conversation goes blank once nothing in it is left unredacted.
        unredacted = Message.objects.filter(thread=OuterRef("pk"), redacted_at__isnull=True)
        conversations = (
            Thread.objects.filter(pk__in=thread_ids)
            .exclude(Exists(unredacted))
            .update(subject="", customer_address="")
        )
    return Report(len(message_ids), len(draft_ids), attachments, conversations)


def apply_retention(days: int | None = None) -> str:
    """The nightly task: redact everything past the retention period, in batches."""
    days = settings.REPLYHUB_RETENTION_DAYS if days is None else days
    if not days:
        return "no retention period (REPLYHUB_RETENTION_DAYS=0): nothing redacted"
    total = Report()
    with leaving_no_trace():
        while ids := list(due(days).values_list("pk", flat=True)[:BATCH]):
            done = redact(ids)
            total.messages += done.messages
            total.drafts += done.drafts
            total.attachments += done.attachments
            total.conversations += done.conversations
    return str(total)

"""Erasing a customer's data on request (PIPL art. 47; GDPR art. 17): every email from or
to the address, with its drafts, attachments, replies, history and what other records quote
of it, in one transaction; a record of the erasure keeps only counts and a hash.

What is erased, for an address:
- the conversations (threads) with that customer, and every message in them;
- any other message from the address (From or Reply-To), copied to it (the Cc of the email
  or of the reply), or of a reply sent to it;
- with those messages, by cascade: their drafts, review history, attachments (the
  customer's and those reviewers attached to replies), outbox
  records (the raw replies) and API callbacks, and their rows in the search index;
- failure notifications that quote such a reply's subject and recipient, and the rows of
  template replay reports that hold what a candidate template wrote to those emails;
- the address's entries in the blocked senders (a block on its whole domain stays).

The decisions on those drafts leave the stats (their days are summed up again). What is
outside the database is not touched: the mail server's copy (delete it there), backups, and
log files. On SQLite the freed pages are overwritten (``secure_delete``) and the search
index merged, so the text does not linger in the file; on PostgreSQL the rows are gone at
once and their space is reused after the next (auto)vacuum.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection, models, transaction
from django.db.models import Q

from drafts import copies
from drafts.models import (
    Attachment,
    BlockedSender,
    Draft,
    Mailbox,
    Message,
    ReplyAttachment,
    ReviewEvent,
    Thread,
)
from drafts.outbox import Outbox


class Erasure(models.Model):
    """That a customer's data was erased, by whom and how much: no address, only its hash."""

    created_at = models.DateTimeField(auto_now_add=True)
    requested_by = models.CharField(max_length=150, help_text="Who asked for it (a name).")
    address_sha256 = models.CharField(
        max_length=64,
        db_index=True,
        help_text="SHA-256 of the address (lower case): shows whether an address was erased "
        "without keeping it.",
    )
    mailbox = models.CharField(max_length=100, blank=True, help_text="Empty: every mailbox.")
    counts = models.JSONField(default=dict, help_text="What was erased, per kind.")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} by {self.requested_by}"


def address_hash(address: str) -> str:
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()


@dataclass
class Plan:
    """What erasing ``address`` would delete: ids, and their counts per kind."""

    address: str
    mailbox: Mailbox | None
    message_ids: list[int] = field(default_factory=list)
    thread_ids: list[int] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    blocked_ids: list[int] = field(default_factory=list)  # block-list entries of the address

    @property
    def empty(self) -> bool:
        return not self.message_ids and not self.thread_ids and not self.blocked_ids


def plan(address: str, mailbox: Mailbox | None = None) -> Plan:
    """Find everything stored about ``address`` (in ``mailbox``, or in all); nothing changes.

    Raises ValidationError naming the problem when ``address`` is not an email address."""
    address = address.strip().lower()
    try:
        validate_email(address)
    except ValidationError:
        raise ValidationError(f"{address!r} is not an email address.") from None
    threads = Thread.objects.filter(customer_address__iexact=address)
    messages = Message.objects.filter(
        Q(thread__in=threads)
        | Q(from_address__iexact=address)
        | Q(reply_to__iexact=address)
        | Q(draft__deliveries__recipient__iexact=address)
        # Copied on someone's email, or on a reply: those conversations name them too.
        | Q(cc__iregex=copies.naming(address))
        | Q(draft__cc__iregex=copies.naming(address))
    )
    if mailbox is not None:
        threads, messages = threads.filter(mailbox=mailbox), messages.filter(mailbox=mailbox)
    blocked = BlockedSender.objects.filter(pattern=address)
    if mailbox is not None:
        blocked = blocked.filter(mailbox=mailbox)
    message_ids = sorted(set(messages.values_list("pk", flat=True)))
    thread_ids = sorted(set(threads.values_list("pk", flat=True)))
    blocked_ids = list(blocked.values_list("pk", flat=True))
    drafts = Draft.objects.filter(message_id__in=message_ids)
    counts = {
        "messages received": Message.objects.filter(
            pk__in=message_ids, direction=Message.INBOUND
        ).count(),
        "replies sent": Message.objects.filter(
            pk__in=message_ids, direction=Message.OUTBOUND
        ).count(),
        "conversations": len(thread_ids),
        "drafts": drafts.count(),
        "attachments": Attachment.objects.filter(message_id__in=message_ids).count()
        + ReplyAttachment.objects.filter(draft__message_id__in=message_ids).count(),
        "history entries": ReviewEvent.objects.filter(draft__in=drafts).count(),
        "outbox records": Outbox.objects.filter(draft__in=drafts).count(),
        "blocked-sender entries": len(blocked_ids),
    }
    return Plan(address, mailbox, message_ids, thread_ids, counts, blocked_ids)


def erase(found: Plan, requested_by: str) -> Erasure:
    """Delete what ``found`` lists, in one transaction, and record that it was done."""
    draft_ids = list(
        Draft.objects.filter(message_id__in=found.message_ids).values_list("pk", flat=True)
    )
    counts = dict(found.counts)
    with leaving_no_trace():
        with transaction.atomic():
            counts |= drop_quotes(draft_ids)
            Message.objects.filter(pk__in=found.message_ids).delete()
            Thread.objects.filter(pk__in=found.thread_ids).delete()
            BlockedSender.objects.filter(pk__in=found.blocked_ids).delete()
            record = Erasure.objects.create(
                requested_by=requested_by[:150],
                address_sha256=address_hash(found.address),
                mailbox=found.mailbox.name if found.mailbox else "",
                counts=counts,
            )
    return record


def drop_quotes(draft_ids: list[int]) -> dict[str, int]:
    """Delete what other records quote of these drafts' emails and replies: the failure
    notifications (subject, recipient) and the rows of template replay reports (what a
    candidate template wrote). How many of each."""
    from drafts.notify import Notification
    from drafts.replay import TemplateReplay

    notifications = Notification.objects.filter(
        event=Notification.SEND_FAILED, payload__draft__id__in=draft_ids
    ).delete()[0]
    rows, dropped = set(draft_ids), 0
    for replay in TemplateReplay.objects.iterator():
        kept = [row for row in replay.rows if row.get("draft") not in rows]
        if len(kept) != len(replay.rows):
            dropped += len(replay.rows) - len(kept)
            TemplateReplay.objects.filter(pk=replay.pk).update(rows=kept)
    return {"notifications": notifications, "replay report rows": dropped}


@contextmanager
def leaving_no_trace() -> Iterator[None]:
    """Around deletions of personal data. On SQLite, what is deleted meanwhile is overwritten
    with zeros (``secure_delete``; some builds have it on by default, others not), then,
    once committed, the search index is merged (a deleted entry is dropped for good only
    when its segment merges) and the write-ahead log checkpointed, so that the text is gone
    from the database files. PostgreSQL needs none of this (its old row versions go at the
    next vacuum)."""
    if connection.vendor != "sqlite":
        yield
        return
    with _secure_delete():
        yield
    # At once outside a transaction; SQLite cannot merge the index inside one that still
    # has statements open on it.
    transaction.on_commit(_merge_search_index)


@contextmanager
def _secure_delete() -> Iterator[None]:
    """SQLite's secure_delete on for a while; the connection's own setting restored after."""
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA secure_delete")
        before = cursor.fetchone()[0]
        cursor.execute("PRAGMA secure_delete = ON")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"PRAGMA secure_delete = {int(before)}")


def _merge_search_index() -> None:
    with _secure_delete(), connection.cursor() as cursor:
        cursor.execute("INSERT INTO drafts_message_fts(drafts_message_fts) VALUES ('optimize')")
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")

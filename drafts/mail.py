"""Mail as stored: conversations (threads), messages with their raw bytes, attachments.

Imported by drafts.models, which registers these models with Django (see its end).
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy

from drafts import search
from drafts.mailboxes import Mailbox


class Thread(models.Model):
    """A conversation with one customer."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="threads")
    subject = models.CharField(max_length=500, help_text="Normalized: no Re:/Fwd:/回复: prefixes.")
    customer_address = models.CharField(max_length=320)
    created_at = models.DateTimeField(auto_now_add=True)
    last_message_at = models.DateTimeField(default=timezone.now)

    class Meta:
        # Lookups always name the mailbox; indexes that start with it keep SQLite's
        # planner from scanning the whole mailbox through the mailbox_id index.
        indexes = [
            models.Index(fields=["mailbox", "customer_address", "subject"]),
            # A reply without usable references finds its thread by subject (ingest's
            # find_thread): without this, a read of every thread of the mailbox.
            models.Index(fields=["mailbox", "subject"], name="thread_mailbox_subject"),
        ]

    def __str__(self) -> str:
        return self.subject


class Message(models.Model):
    """One email as received (or as sent), with its raw bytes kept unchanged."""

    INBOUND, OUTBOUND = "in", "out"

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="messages")
    thread = models.ForeignKey(
        Thread, null=True, on_delete=models.SET_NULL, related_name="messages"
    )
    direction = models.CharField(
        max_length=3,
        choices=[(INBOUND, gettext_lazy("received")), (OUTBOUND, gettext_lazy("sent"))],
        default=INBOUND,
    )
    raw = models.BinaryField()
    sha256 = models.CharField(max_length=64)
    message_id = models.CharField(max_length=500)  # indexed: PostgreSQL caps key size
    in_reply_to = models.CharField(max_length=998, blank=True)
    references = models.TextField(blank=True)
    subject = models.CharField(max_length=998, blank=True)
    from_name = models.CharField(max_length=300, blank=True)
    from_address = models.CharField(max_length=320, blank=True)
    reply_to = models.CharField(max_length=320, blank=True)
    to = models.TextField(blank=True)
    cc = models.TextField(blank=True)
    date = models.DateTimeField(null=True, blank=True)
    size = models.PositiveIntegerField(default=0, help_text="Size of the raw message in bytes.")
    text = models.TextField(blank=True, help_text="Plain-text body, complete, for display.")
    model_text = models.TextField(
        blank=True, help_text="The text without quoted history and signature: what the model reads."
    )
    html = models.TextField(blank=True, help_text="HTML body, sanitized with nh3.")
    headers = models.JSONField(default=list)
    auto_kind = models.CharField(
        max_length=40,
        blank=True,
        help_text="Why no draft: auto-reply, bulk, list, bounce, oversize, rate-limited, blocked, "
        "own-reply.",
    )
    defects = models.JSONField(default=list)
    received_at = models.DateTimeField(auto_now_add=True)
    redacted_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When the retention period removed the content (drafts/retention.py).",
    )
    search_text = models.TextField(
        blank=True,
        editable=False,
        help_text="Subject, sender and body as the search index reads them.",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "sha256"], name="unique_raw_per_mailbox")
        ]
        indexes = [
            models.Index(fields=["mailbox", "message_id"]),
            models.Index(fields=["mailbox", "from_address", "received_at"]),
            # /metrics counts received mail per mailbox from this index alone.
            models.Index(fields=["mailbox", "direction"], name="message_mailbox_direction"),
        ]
        ordering = ["date", "id"]

    def __str__(self) -> str:
        return f"{self.subject} ({self.from_address})"

    def save(self, *args: object, **kwargs: object) -> None:
        self.search_text = self.searchable_text()
        update_fields = kwargs.get("update_fields")
        if update_fields is not None:
            kwargs["update_fields"] = {*update_fields, "search_text"}
        super().save(*args, **kwargs)

    def searchable_text(self) -> str:
        """What search finds this message by; bulk_create callers set search_text from it."""
        return search.document(self.subject, self.from_name, self.from_address, self.text)

    @property
    def text_for_model(self) -> str:
        return self.model_text or self.text

    @property
    def reply_address(self) -> str:
        """Where a reply goes: Reply-To when present, else From."""
        return self.reply_to or self.from_address


class Attachment(models.Model):
    """A file that came with a message; served only as a download."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="attachments")
    filename = models.CharField(max_length=255, help_text="Sanitized: no paths, no controls.")
    content_type = models.CharField(max_length=255)
    size = models.PositiveIntegerField()
    data = models.BinaryField(help_text="Empty when the file was over the size limit.")
    inline = models.BooleanField(default=False)

    def __str__(self) -> str:
        return self.filename

    @property
    def stored(self) -> bool:
        """False when the file was over the size limit and only its metadata was kept."""
        return self.size == 0 or len(self.data) > 0

"""Sending approved replies by SMTP, exactly once per approval.

The send task claims the draft (approved -> sending) with a conditional UPDATE, so a
second delivery of the task, or a second worker, finds nothing to send. A draft left
in "sending" by a crashed worker is never resent automatically: the server may have
accepted it already. Headers come from the stored message, never from model output.
"""

from __future__ import annotations

import hashlib
import logging
import smtplib

from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from drafts import mailparse
from drafts.models import Draft, Message, ReviewEvent

log = logging.getLogger(__name__)

REPLY_PREFIXES = ("re:", "回复:", "回复：", "答复:", "答复：", "回覆:", "回覆：", "答覆:", "答覆：")


class HeaderInjectionError(ValueError):
    """A header value contains a line break."""


def reply_subject(subject: str) -> str:
    """ "Re: " + subject, unless it already starts with a reply prefix."""
    subject = subject.strip()
    if subject.lower().startswith(REPLY_PREFIXES):
        return subject
    return f"Re: {subject}" if subject else "Re: your message"


def _safe(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise HeaderInjectionError(f"line break in header value {value[:60]!r}")
    return value


def build_reply(draft: Draft) -> EmailMessage:
    """The reply to ``draft.message`` as an email, all headers set by code."""
    original: Message = draft.message
    mailbox = original.mailbox
    references = [*original.references.split(), original.message_id]
    headers = {
        "Message-ID": _safe(draft.outgoing_message_id),
        "In-Reply-To": _safe(original.message_id),
        "References": _safe(" ".join(dict.fromkeys(r for r in references if r))),
        "Auto-Submitted": "no",
    }
    return EmailMessage(
        subject=_safe(reply_subject(original.subject)),
        body=draft.reply_text,
        from_email=_safe(mailparse.format_address(mailbox.display_name, mailbox.address)),
        to=[_safe(original.reply_address)],
        headers=headers,
    )


def send_draft(draft_id: int) -> str:
    """Send one approved draft; record the outcome on it."""
    claimed = Draft.objects.filter(pk=draft_id, status=Draft.APPROVED).update(
        status=Draft.SENDING, send_attempts=F("send_attempts") + 1, version=F("version") + 1
    )
    if claimed != 1:
        return "skipped: not approved"
    draft = Draft.objects.select_related("message__mailbox").get(pk=draft_id)
    try:
        email = build_reply(draft)
        with get_connection() as connection:
            connection.send_messages([email])
    except (TimeoutError, smtplib.SMTPException, OSError, HeaderInjectionError) as exc:
        log.warning("Draft %s: sending failed: %s", draft_id, exc)
        with transaction.atomic():
            Draft.objects.filter(pk=draft_id, status=Draft.SENDING).update(
                status=Draft.SEND_FAILED,
                send_error=f"{type(exc).__name__}: {exc}"[:2000],
                version=F("version") + 1,
            )
            ReviewEvent.objects.create(draft=draft, action=ReviewEvent.SEND_FAILED, note=str(exc))
        return "failed"
    with transaction.atomic():
        Draft.objects.filter(pk=draft_id, status=Draft.SENDING).update(
            status=Draft.SENT, sent_at=timezone.now(), send_error="", version=F("version") + 1
        )
        ReviewEvent.objects.create(
            draft=draft, action=ReviewEvent.SENT, text_after=draft.reply_text
        )
        raw = email.message().as_bytes()
        Message.objects.get_or_create(
            mailbox=draft.message.mailbox,
            sha256=hashlib.sha256(raw).hexdigest(),
            defaults={
                "thread": draft.message.thread,
                "direction": Message.OUTBOUND,
                "raw": raw,
                "message_id": draft.outgoing_message_id,
                "in_reply_to": draft.message.message_id,
                "subject": email.subject,
                "from_name": draft.message.mailbox.display_name,
                "from_address": draft.message.mailbox.address,
                "to": ", ".join(email.to),
                "date": timezone.now(),
                "text": draft.reply_text,
            },
        )
    log.info("Draft %s sent to %s", draft_id, ", ".join(email.to))
    return "sent"

"""Sending approved replies by SMTP: exactly one reply per approval, never lost.

An approval stores an `Outbox` record holding the finished message (headers set here, by
code, never from model output; the Message-ID chosen before any attempt). The send task
claims the record atomically, talks SMTP itself so it knows how far it got, and records
the outcome: sent; a 4xx answer or a connection lost before the message data, retried
with backoff; a 5xx answer, failed for good with the server's words; a connection lost
after the message data, *uncertain*, never resent without a person. A worker that dies
mid-send leaves the record "sending"; `sweep_outbox` (every minute) turns that into
uncertain too, because the server may have accepted the message.
"""

from __future__ import annotations

import hashlib
import logging
import re
import smtplib
import ssl
from datetime import timedelta
from email.utils import make_msgid

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Q
from django.template.defaultfilters import linebreaksbr
from django.utils import timezone
from django.utils.html import escape

from drafts import copies, mailparse
from drafts.models import Draft, Message
from drafts.outbox import Outbox

log = logging.getLogger(__name__)

REPLY_PREFIXES = ("re:", "回复:", "回复：", "答复:", "答复：", "回覆:", "回覆：", "答覆:", "答覆：")


class HeaderInjectionError(ValueError):
    """A header value contains a line break."""


class TemporaryFailure(Exception):
    """Nothing was delivered, and trying again later may work (4xx, connection trouble)."""


class PermanentFailure(Exception):
    """The server refused the message for good (5xx)."""


class UncertainDelivery(Exception):
    """The message data went out, but the server's answer never came back."""


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


def build_reply(draft: Draft, message_id: str) -> EmailMultiAlternatives:
    """The reply to ``draft.message`` as an email, all headers set by code."""
    original: Message = draft.message
    mailbox = original.mailbox
    references = [*original.references.split(), original.message_id]
    headers = {
        "Message-ID": _safe(message_id),
        "In-Reply-To": _safe(original.message_id),
        "References": _safe(" ".join(dict.fromkeys(r for r in references if r))),
        "Auto-Submitted": "no",
    }
    email = EmailMultiAlternatives(
        subject=_safe(reply_subject(original.subject)),
        body=draft.reply_text,
        from_email=_safe(mailparse.format_address(mailbox.display_name, mailbox.address)),
        to=[_safe(original.reply_address)],
        cc=[_safe(address) for address in copies.of(draft.cc)],
        headers=headers,
    )
    if mailbox.html_replies:
        email.attach_alternative(_as_html(draft.reply_text), "text/html")
    for file in draft.reply_attachments.all():
        email.attach(file.filename, bytes(file.data), file.content_type)
    return email


def _as_html(text: str) -> str:
    """The reply's own words as simple HTML: paragraphs and line breaks, all escaped."""
    paragraphs = (p.strip() for p in re.split(r"\n\s*\n", text.strip()))
    body = "".join(f"<p>{linebreaksbr(escape(p))}</p>" for p in paragraphs if p)
    return f'<!doctype html><html><body style="font-family:sans-serif">{body}</body></html>'


def queue_reply(draft: Draft) -> Outbox:
    """Store the approved reply in the outbox and queue its sending (inside the approval's
    transaction: the approval, the outbox record and the task exist together or not at all).
    """
    from drafts.tasks import enqueue_delivery

    domain = draft.message.mailbox.address.rpartition("@")[2] or "replyhub.local"
    message_id = make_msgid(domain=domain)
    email = build_reply(draft, message_id)
    outbox = Outbox.objects.create(
        draft=draft,
        mailbox=draft.message.mailbox,
        message_id=message_id,
        sender=draft.message.mailbox.address,
        recipient=email.to[0],
        cc=copies.lines(email.cc),
        raw=email.message().as_bytes(linesep="\r\n"),
        next_attempt_at=timezone.now() + timedelta(seconds=settings.REPLYHUB_UNDO_SECONDS),
    )
    Draft.objects.filter(pk=draft.pk).update(outgoing_message_id=message_id)
    enqueue_delivery(outbox)
    return outbox


# -- SMTP ---------------------------------------------------------------------------------


def _dot_stuffed(raw: bytes) -> bytes:
    """The message as the DATA command carries it: CRLF lines, leading dots doubled."""
    lines = re.sub(rb"\r\n|\r|\n", b"\r\n", raw).split(b"\r\n")
    body = b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines)
    return body.rstrip(b"\r\n") + b"\r\n.\r\n"


def _refused(code: int, reply: bytes, step: str) -> Exception:
    text = f"{step}: {code} {reply.decode(errors='replace')}"
    return PermanentFailure(text) if 500 <= code < 600 else TemporaryFailure(text)


def _connect() -> smtplib.SMTP:
    host, port, timeout = settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT
    context = ssl.create_default_context(cafile=settings.SMTP_CA_FILE or None)
    if settings.EMAIL_USE_SSL:
        connection = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        connection = smtplib.SMTP(host, port, timeout=timeout)
        if settings.EMAIL_USE_TLS:
            connection.starttls(context=context)
    connection.ehlo_or_helo_if_needed()
    if settings.EMAIL_HOST_USER:
        connection.login(settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD)
    return connection


def deliver(sender: str, recipient: str, raw: bytes, cc: tuple[str, ...] = ()) -> str:
    """Hand ``raw`` to the SMTP server for ``recipient`` and the copies ``cc``; the server's
    answer, or one of the three failures.

    The recipient's answer decides; a copy the server refuses (for now or for good) is left
    out, and the answer says so: the customer's reply never waits for a colleague's typo.
    """
    left_out = []
    try:
        connection = _connect()
        for command, argument, step in (
            (connection.mail, sender, "MAIL FROM"),
            (connection.rcpt, recipient, "RCPT TO"),
        ):
            code, reply = command(argument)
            if code not in (250, 251):
                raise _refused(code, reply, step)
        for copy in cc:
            code, reply = connection.rcpt(copy)
            if code not in (250, 251):
                left_out.append(f"{copy}: {code} {reply.decode(errors='replace')}")
        code, reply = connection.docmd("DATA")
        if code != 354:
            raise _refused(code, reply, "DATA")
    except smtplib.SMTPResponseException as exc:  # e.g. 535 at AUTH, 554 at the greeting
        raise _refused(exc.smtp_code, exc.smtp_error, "connect") from exc
    except (OSError, smtplib.SMTPException) as exc:
        raise TemporaryFailure(f"{type(exc).__name__}: {exc}") from exc
    # From here on the server may get the message: a lost answer means "maybe delivered".
    try:
        connection.send(_dot_stuffed(raw))
        code, reply = connection.getreply()
    except (OSError, smtplib.SMTPException) as exc:
        raise UncertainDelivery(
            f"the connection broke after the message was sent ({type(exc).__name__}: {exc})"
        ) from exc
    try:
        connection.quit()
    except (OSError, smtplib.SMTPException):
        pass  # the server has answered; how the connection ends does not matter
    if code != 250:
        raise _refused(code, reply, "end of DATA")
    answer = f"{code} {reply.decode(errors='replace')}"
    return f"{answer} (copies not accepted: {'; '.join(left_out)})" if left_out else answer


# -- tasks --------------------------------------------------------------------------------


def send_outbox(outbox_id: int) -> str:
    """The send task: claim the reply, send it once, record what happened."""
    outbox = Outbox.objects.filter(pk=outbox_id).first()
    if outbox is None or not outbox.claim():
        return "skipped: not due, or another worker has it"
    # What a log collector finds this send's lines by (docs/operations.md).
    ids = {
        "outbox_id": outbox_id,
        "draft_id": outbox.draft_id,
        "message_id": Draft.objects.values_list("message_id", flat=True).get(pk=outbox.draft_id),
        "task": "send_outbox",
    }
    try:
        cc = tuple(copies.of(outbox.cc))
        reply = deliver(outbox.sender, outbox.recipient, bytes(outbox.raw), cc)
    except TemporaryFailure as exc:
        log.warning("Outbox %s: will retry: %s", outbox_id, exc, extra=ids)
        outbox.mark_temporary_failure(str(exc))
        return f"retry: {exc}"
    except PermanentFailure as exc:
        log.warning("Outbox %s: failed: %s", outbox_id, exc, extra=ids)
        outbox.mark_failed(str(exc))
        return f"failed: {exc}"
    except UncertainDelivery as exc:
        log.error("Outbox %s: uncertain: %s", outbox_id, exc, extra=ids)
        outbox.mark_uncertain(str(exc))
        return f"uncertain: {exc}"
    outbox.mark_sent(reply)
    _keep_sent_copy(outbox)
    log.info("Outbox %s: sent to %s", outbox_id, outbox.recipient, extra=ids)
    return "sent"


def _keep_sent_copy(outbox: Outbox) -> None:
    """The reply in the thread, and (when configured) in the mailbox's IMAP Sent folder."""
    draft = outbox.draft
    raw = bytes(outbox.raw)
    Message.objects.get_or_create(
        mailbox=outbox.mailbox,
        sha256=hashlib.sha256(raw).hexdigest(),
        defaults={
            "thread": draft.message.thread,
            "direction": Message.OUTBOUND,
            "raw": raw,
            "message_id": outbox.message_id,
            "in_reply_to": draft.message.message_id,
            "subject": reply_subject(draft.message.subject),
            "from_name": outbox.mailbox.display_name,
            "from_address": outbox.mailbox.address,
            "to": outbox.recipient,
            "cc": ", ".join(copies.of(outbox.cc)),
            "date": outbox.sent_at,
            "text": draft.reply_text,
        },
    )
    if outbox.mailbox.imap_host and outbox.mailbox.imap_sent_folder:
        from drafts.imap import IMAP_ERRORS, IMAPConfigError, append_sent

        try:
            append_sent(outbox.mailbox, raw)
        except (*IMAP_ERRORS, IMAPConfigError) as exc:  # a missing copy never undoes a send
            log.warning("Outbox %s: sent, but no copy in the Sent folder: %s", outbox.pk, exc)
            return
        Outbox.objects.filter(pk=outbox.pk).update(copied_to_sent=True)


def sweep_outbox() -> str:
    """Every minute: replies stuck in "sending" become uncertain; due ones are queued."""
    from drafts.tasks import enqueue_delivery

    stale = timezone.now() - timedelta(seconds=settings.EMAIL_TIMEOUT * 4 + 60)
    stuck = 0
    for outbox in Outbox.objects.filter(state=Outbox.SENDING, sending_since__lt=stale):
        stuck += outbox.mark_uncertain(
            "the worker stopped while sending; the server may have accepted the message"
        )
    # A queued reply's own task normally runs at once; one still due a minute later lost
    # its task (or waited for the rate limit). A second task is harmless: claims are atomic.
    now = timezone.now()
    due = Outbox.objects.filter(
        Q(state=Outbox.RETRY, next_attempt_at__lte=now)
        | Q(state=Outbox.QUEUED, next_attempt_at__lte=now - timedelta(minutes=1))
    )
    queued = 0
    for outbox in due:
        enqueue_delivery(outbox)
        queued += 1
    return f"{stuck} uncertain, {queued} queued"


def send_draft(draft_id: int) -> str:
    """The send task of ReplyHub before the outbox, for tasks queued before an upgrade:
    an approved draft without an outbox record gets one, then is sent as any other."""
    draft = Draft.objects.select_related("message__mailbox").filter(pk=draft_id).first()
    if draft is None or draft.status != Draft.APPROVED or draft.deliveries.exists():
        return "skipped: not an approved draft waiting for the outbox"
    with transaction.atomic():
        outbox = queue_reply(draft)
    return send_outbox(outbox.pk)

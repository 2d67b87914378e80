"""Ingestion: one function stores a message, whatever brought it (file, IMAP, tests).

A message is committed with its raw bytes before anything else happens; its draft is
queued only after that commit. The same bytes in the same mailbox are stored once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from drafts import mailparse
from drafts.models import Attachment, Draft, Mailbox, Message, Thread

log = logging.getLogger(__name__)

MAIL_SUFFIXES = {".eml", ".msg", ".txt", ""}


@dataclass
class ImportReport:
    """What an import did, for the command line and the tests."""

    added: int = 0
    duplicates: int = 0
    drafts: int = 0
    no_draft: int = 0

    def __str__(self) -> str:
        return (
            f"{self.added} new message(s), {self.duplicates} already stored, "
            f"{self.drafts} queued for a draft, {self.no_draft} stored without a draft"
        )


def find_thread(mailbox: Mailbox, parsed: mailparse.ParsedMail) -> Thread:
    """The thread this message belongs to, or a new one.

    A referenced message only counts if it is from or to the same customer, so a forged
    References header cannot attach mail to another customer's conversation.
    """
    customer = parsed.reply_to or parsed.from_address
    mine = {parsed.from_address, parsed.reply_to} - {""}
    ids = [parsed.in_reply_to, *reversed(parsed.references)]
    ids = [i for i in ids if i]
    if ids and mine:
        same_customer = (
            Q(from_address__in=mine) | Q(reply_to__in=mine) | Q(thread__customer_address__in=mine)
        )
        parent = (
            Message.objects.filter(mailbox=mailbox, message_id__in=ids, thread__isnull=False)
            .filter(same_customer)
            .select_related("thread")
            .order_by("-id")
            .first()
        )
        if parent:
            return parent.thread
    subject = mailparse.normalize_subject(parsed.subject)
    if subject != parsed.subject.strip():
        thread = (
            Thread.objects.filter(mailbox=mailbox, subject=subject, customer_address__in=mine)
            .order_by("-last_message_at")
            .first()
        )
        if thread:
            return thread
    return Thread.objects.create(mailbox=mailbox, subject=subject[:500], customer_address=customer)


def _no_draft_reason(mailbox: Mailbox, parsed: mailparse.ParsedMail) -> str:
    """Why this message gets no draft ("" when it gets one)."""
    if parsed.auto_kind:
        return parsed.auto_kind
    if parsed.oversize:
        return "oversize"
    since = timezone.now() - timedelta(hours=1)
    recent = Draft.objects.filter(
        message__mailbox=mailbox, message__from_address=parsed.from_address, created_at__gte=since
    )
    if parsed.from_address and recent.count() >= settings.REPLYHUB_SENDER_DRAFTS_PER_HOUR:
        return "rate-limited"
    return ""


def ingest_message(mailbox: Mailbox, raw: bytes) -> tuple[Message, bool]:
    """Store ``raw`` in ``mailbox`` and queue its draft. Returns (message, created).

    Raises mailparse.NotMailError for bytes that are not mail; any other problem with
    the message is recorded in its defects, and the message is stored all the same.
    """
    parsed = mailparse.parse(
        raw,
        max_bytes=settings.REPLYHUB_MAX_MESSAGE_BYTES,
        max_attachment_bytes=settings.REPLYHUB_MAX_ATTACHMENT_BYTES,
    )
    existing = Message.objects.filter(mailbox=mailbox, sha256=parsed.sha256).first()
    if existing:
        return existing, False
    defects = list(parsed.defects)
    same_id = list(
        Message.objects.filter(mailbox=mailbox, message_id=parsed.message_id).values_list(
            "pk", flat=True
        )[:5]
    )
    if same_id:
        defects.append(f"duplicate Message-ID: also used by message(s) {same_id}")
    try:
        with transaction.atomic():
            thread = find_thread(mailbox, parsed)
            no_draft = _no_draft_reason(mailbox, parsed)
            message = Message.objects.create(
                mailbox=mailbox,
                thread=thread,
                raw=raw,
                sha256=parsed.sha256,
                size=len(raw),
                message_id=parsed.message_id,
                in_reply_to=parsed.in_reply_to,
                references=" ".join(parsed.references),
                subject=parsed.subject,
                from_name=parsed.from_name,
                from_address=parsed.from_address,
                reply_to=parsed.reply_to,
                to=parsed.to,
                date=parsed.date,
                text=parsed.text,
                model_text=parsed.model_text,
                html=parsed.html,
                headers=parsed.headers,
                auto_kind=no_draft,
                defects=defects,
            )
            Attachment.objects.bulk_create(
                Attachment(
                    message=message,
                    filename=a.filename,
                    content_type=a.content_type,
                    size=a.size,
                    data=a.data,
                    inline=a.inline,
                )
                for a in parsed.attachments
            )
            thread.last_message_at = parsed.date or timezone.now()
            thread.save(update_fields=["last_message_at"])
            if not no_draft:
                from drafts.tasks import enqueue_generation

                enqueue_generation(Draft.objects.create(message=message))
    except IntegrityError:
        # Another process stored the same bytes between our check and our insert.
        return Message.objects.get(mailbox=mailbox, sha256=parsed.sha256), False
    return message, True


def iter_mbox(path: Path) -> Iterator[tuple[bytes, int]]:
    """Messages of an mbox file as bytes, with the file offset reached; streams the file."""
    current: list[bytes] = []
    with path.open("rb") as handle:
        for line in handle:
            if line.startswith(b"From ") and current:
                yield b"".join(current), handle.tell()
                current = []
            if not (line.startswith(b"From ") and not current):
                current.append(line)
        if current:
            yield b"".join(current), handle.tell()


def is_mbox(path: Path) -> bool:
    """An mbox file starts with a "From " separator line."""
    with path.open("rb") as handle:
        return handle.read(5) == b"From "


def collect_files(paths: list[Path]) -> list[Path]:
    """Files to import: the paths given, with folders expanded to the files inside.

    Every file is checked before anything is stored, so a wrong path or a file that is
    not mail stops the import with nothing half-imported.
    """
    files: list[Path] = []
    for path in paths:
        if not path.exists():
            raise mailparse.NotMailError(f"{path}: no such file or folder")
        if path.is_dir():
            files.extend(
                p for p in sorted(path.rglob("*")) if p.is_file() and not p.name.startswith(".")
            )
        else:
            files.append(path)
    for file in files:
        with file.open("rb") as handle:
            head = handle.read(4096)
        if not mailparse.looks_like_mail(head):
            raise mailparse.NotMailError(
                f"{file}: not an email message or mbox file (it does not start with mail headers)"
            )
    return files


def import_paths(
    paths: list[Path],
    mailbox: Mailbox,
    progress: Callable[[str], None] = lambda line: None,
) -> ImportReport:
    """Import .eml files, folders of them and mbox files into ``mailbox``."""
    report = ImportReport()
    files = collect_files(paths)
    for number, file in enumerate(files, 1):
        if is_mbox(file):
            size = max(file.stat().st_size, 1)
            for count, (raw, offset) in enumerate(iter_mbox(file), 1):
                count_into(report, *ingest_message(mailbox, raw))
                if count % 50 == 0 or offset == size:
                    progress(f"{file.name}: {count} messages, {100 * offset // size}%")
        else:
            count_into(report, *ingest_message(mailbox, file.read_bytes()))
            progress(f"[{number}/{len(files)}] {file.name}")
    return report


def count_into(report: ImportReport, message: Message, created: bool) -> None:
    """Add one ingested message to ``report``."""
    if not created:
        report.duplicates += 1
        return
    report.added += 1
    if message.auto_kind:
        report.no_draft += 1
    else:
        report.drafts += 1

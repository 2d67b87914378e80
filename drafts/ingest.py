"""Ingestion: one function stores a message, whatever brought it (file, IMAP, tests).

A message is committed with its raw bytes before anything else happens; its draft is
queued only after that commit. The same bytes in the same mailbox are stored once.
"""

from __future__ import annotations

import gc
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from drafts import copies, mailparse
from drafts.models import Attachment, BlockedSender, Draft, Mailbox, Message, Outbox, Thread

log = logging.getLogger(__name__)

BATCH_SIZE = 200
# A batch is parsed before it is stored, so its bytes bound the import's memory.
BATCH_BYTES = 16 * 1024 * 1024


@dataclass
class ImportReport:
    """What an import did, for the command line and the tests."""

    added: int = 0
    duplicates: int = 0
    drafts: int = 0
    no_draft: int = 0
    not_mail: int = 0  # pieces of an mbox that were not mail, skipped

    @property
    def seen(self) -> int:
        return self.added + self.duplicates

    def __str__(self) -> str:
        return (
            f"{self.added} new message(s), {self.duplicates} already stored, "
            f"{self.drafts} queued for a draft, {self.no_draft} stored without a draft"
            + (f", {self.not_mail} piece(s) of mbox skipped as not mail" if self.not_mail else "")
        )


def find_thread(mailbox: Mailbox, parsed: mailparse.ParsedMail, lookups: Lookups) -> Thread:
    """The thread this message belongs to, or a new one.

    A referenced message only counts if it is from or to the same customer, so a forged
    References header cannot attach mail to another customer's conversation; of those,
    the latest stored wins. The referenced messages were read for the whole batch
    (Lookups.parents).
    """
    customer = parsed.reply_to or parsed.from_address
    mine = {parsed.from_address, parsed.reply_to} - {""}
    ids = [parsed.in_reply_to, *reversed(parsed.references)]
    if mine and (found := lookups.parent(ids, mine)):
        return found
    subject = mailparse.normalize_subject(parsed.subject)
    if subject != parsed.subject.strip():
        # The same customer: the thread's address, or the From/Reply-To of a message in it
        # (a customer may write from an address other than the Reply-To they gave first).
        customers_thread = (
            Q(customer_address__in=mine)
            | Q(messages__from_address__in=mine)
            | Q(messages__reply_to__in=mine)
        )
        thread = (
            Thread.objects.filter(customers_thread, mailbox=mailbox, subject=subject)
            .distinct()
            .order_by("-last_message_at")[:1]
        )
        if thread:
            return lookups.thread(thread[0])
    return Thread.objects.create(
        mailbox=mailbox,
        subject=subject[:500],
        customer_address=customer,
        last_message_at=parsed.date or timezone.now(),
    )


@dataclass
class Lookups:
    """What storing a batch of messages needs to know, fetched with one query each.

    Kept up to date while the batch is stored, so a message sees the ones before it.
    """

    known: dict[str, Message]  # sha256 -> message already stored
    by_message_id: dict[str, list[int]]  # Message-ID -> ids of messages that use it
    recent_drafts: Counter[str]  # sender -> messages drafted within the last hour
    blocked: Callable[[str], bool] = lambda address: False  # a blocked sender's address?
    # Message-ID -> (id, the addresses it is from or to, thread) of stored messages in a
    # thread that the batch's messages refer to; one Thread object per thread, so that a
    # thread's last_message_at, changed by one message, is what the next one sees.
    parents: dict[str, list[tuple[int, set[str], Thread]]] = field(default_factory=dict)
    threads: dict[int, Thread] = field(default_factory=dict)
    # Message-IDs of the batch that are our own replies, come back (a copy to an alias of
    # the mailbox, a customer's server returning it): answering them would talk to itself.
    own_replies: set[str] = field(default_factory=set)
    # The team's mailboxes, never copied on a reply (drafts/copies.py).
    team_addresses: set[str] = field(default_factory=set)

    def thread(self, thread: Thread) -> Thread:
        """The batch's one object for ``thread``."""
        return self.threads.setdefault(thread.pk, thread)

    def parent(self, ids: list[str], mine: set[str]) -> Thread | None:
        """The thread of the latest message among ``ids`` from or to one of ``mine``."""
        found = [
            (pk, thread)
            for message_id in ids
            for pk, addresses, thread in self.parents.get(message_id, ())
            if addresses & mine
        ]
        return max(found, key=lambda pair: pair[0])[1] if found else None

    def _add_parent(self, message: Message, thread: Thread) -> None:
        addresses = {message.from_address, message.reply_to, thread.customer_address} - {""}
        entry = (message.pk, addresses, self.thread(thread))
        self.parents.setdefault(message.message_id, []).append(entry)

    @classmethod
    def for_digests(cls, mailbox: Mailbox, digests: set[str]) -> Lookups:
        known = Message.objects.filter(mailbox=mailbox, sha256__in=digests)
        return cls({m.sha256: m for m in known}, {}, Counter())

    def load_for(self, mailbox: Mailbox, parsed: list[mailparse.ParsedMail]) -> None:
        """Fetch the Message-IDs and recent senders these parsed messages need."""
        ids = {p.message_id[:500] for p in parsed}
        self.own_replies = set(
            Outbox.objects.filter(message_id__in=ids).values_list("message_id", flat=True)
        )
        self.team_addresses = set(Mailbox.objects.values_list("address", flat=True))
        for pk, message_id in Message.objects.filter(
            mailbox=mailbox, message_id__in=ids
        ).values_list("pk", "message_id"):
            self.by_message_id.setdefault(message_id, []).append(pk)
        senders = {p.from_address for p in parsed if p.from_address}
        # Messages that got a draft, on the (mailbox, from_address, received_at) index.
        recent = Message.objects.filter(
            mailbox=mailbox,
            from_address__in=senders,
            received_at__gte=timezone.now() - timedelta(hours=1),
            auto_kind="",
        )
        self.recent_drafts.update(recent.values_list("from_address", flat=True))
        self.blocked = BlockedSender.matcher(mailbox)
        referred = {i[:500] for p in parsed for i in (p.in_reply_to, *p.references) if i}
        for message in (
            Message.objects.filter(mailbox=mailbox, message_id__in=referred, thread__isnull=False)
            .select_related("thread")
            .only("message_id", "from_address", "reply_to", "thread")
        ):
            self._add_parent(message, message.thread)

    def no_draft_reason(self, parsed: mailparse.ParsedMail) -> str:
        """Why this message gets no draft ("" when it gets one)."""
        if parsed.auto_kind:
            return parsed.auto_kind
        if parsed.message_id[:500] in self.own_replies:
            return "own-reply"
        if parsed.oversize:
            return "oversize"
        if parsed.from_address and self.blocked(parsed.from_address):
            return "blocked"
        limit = settings.REPLYHUB_SENDER_DRAFTS_PER_HOUR
        if parsed.from_address and self.recent_drafts[parsed.from_address] >= limit:
            return "rate-limited"
        return ""

    def remember(self, message: Message) -> None:
        self.known[message.sha256] = message
        self.by_message_id.setdefault(message.message_id, []).append(message.pk)
        if message.thread_id:
            self._add_parent(message, message.thread)
        if not message.auto_kind:
            self.recent_drafts[message.from_address] += 1


def ingest_message(mailbox: Mailbox, raw: bytes) -> tuple[Message, bool]:
    """Store ``raw`` in ``mailbox`` and queue its draft. Returns (message, created).

    Raises mailparse.NotMailError for bytes that are not mail; any other problem with
    the message is recorded in its defects, and the message is stored all the same.
    """
    return ingest_batch(mailbox, [raw])[0]


def ingest_batch(mailbox: Mailbox, raws: list[bytes]) -> list[tuple[Message, bool]]:
    """Store messages in order, each in its own transaction (a savepoint inside another).

    The lookups every message needs are made once for the whole batch; known bytes are
    found by their hash before any parsing, so re-imports stay cheap.
    """
    for raw in raws:
        if not mailparse.looks_like_mail(raw):
            raise mailparse.NotMailError("no RFC 822 header at the start")
    digests = [mailparse.digest(raw) for raw in raws]
    lookups = Lookups.for_digests(mailbox, set(digests))
    parsed = {
        digest: mailparse.parse(
            raw,
            max_bytes=settings.REPLYHUB_MAX_MESSAGE_BYTES,
            max_attachment_bytes=settings.REPLYHUB_MAX_ATTACHMENT_BYTES,
        )
        for raw, digest in zip(raws, digests, strict=True)
        if digest not in lookups.known
    }
    if parsed:
        lookups.load_for(mailbox, list(parsed.values()))
    results = []
    for raw, digest in zip(raws, digests, strict=True):
        if digest in lookups.known:
            results.append((lookups.known[digest], False))
            continue
        message = _store(mailbox, raw, parsed[digest], lookups)
        results.append(message)
        lookups.remember(message[0])
    return results


def _store(
    mailbox: Mailbox, raw: bytes, parsed: mailparse.ParsedMail, lookups: Lookups
) -> tuple[Message, bool]:
    message_id = parsed.message_id[:500]
    defects = list(parsed.defects)
    if same_id := lookups.by_message_id.get(message_id, [])[:5]:
        defects.append(f"duplicate Message-ID: also used by message(s) {same_id}")
    try:
        with transaction.atomic():
            thread = find_thread(mailbox, parsed, lookups)
            no_draft = lookups.no_draft_reason(parsed)
            message = Message.objects.create(
                mailbox=mailbox,
                thread=thread,
                raw=raw,
                sha256=parsed.sha256,
                size=len(raw),
                message_id=message_id,
                in_reply_to=parsed.in_reply_to,
                references=" ".join(parsed.references),
                subject=parsed.subject,
                from_name=parsed.from_name,
                from_address=parsed.from_address,
                reply_to=parsed.reply_to,
                to=parsed.to,
                cc=parsed.cc,
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
            if thread.last_message_at < (parsed.date or timezone.now()):
                thread.last_message_at = parsed.date or timezone.now()
                thread.save(update_fields=["last_message_at"])
            draft = None
            if not no_draft:
                from drafts.tasks import enqueue_generation

                cc = _first_copies(message, parsed, lookups)
                draft = Draft.objects.create(message=message, cc=cc)
                enqueue_generation(draft)
    except IntegrityError:
        # Another process stored the same bytes between our check and our insert.
        return Message.objects.get(mailbox=mailbox, sha256=parsed.sha256), False
    log.info(
        "Stored message %s in %s: %s",
        message.pk,
        mailbox.name,
        f"draft {draft.pk} queued" if draft else f"no draft ({no_draft})",
        extra={"message_id": message.pk, "draft_id": draft and draft.pk, "mailbox": mailbox.name},
    )
    return message, True


def _first_copies(message: Message, parsed: mailparse.ParsedMail, lookups: Lookups) -> str:
    """A new draft's copies (Cc): the email's other recipients when its mailbox answers to
    all (drafts/copies.py)."""
    if not message.mailbox.reply_to_all:
        return ""
    team = {message.mailbox.address, *lookups.team_addresses}
    return copies.lines(copies.reply_all(parsed.recipients, message.reply_address, team))


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


@contextmanager
def _quiet_queue_log() -> Iterator[None]:
    """django-q2 logs every enqueued task at INFO, and ingestion every stored message; one
    line per message drowns the progress."""
    loggers = [logging.getLogger("django-q"), log]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.level, logging.WARNING))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def import_paths(
    paths: list[Path],
    mailbox: Mailbox,
    progress: Callable[[str], None] = lambda line: None,
) -> ImportReport:
    """Import .eml files, folders of them and mbox files into ``mailbox``.

    Messages are committed in batches of BATCH_SIZE or BATCH_BYTES (each message is its own
    savepoint): an interrupted import loses at most the current batch, which the next
    run imports, since importing is idempotent.
    """
    report = ImportReport()
    files = collect_files(paths)
    with _quiet_queue_log():
        for number, file in enumerate(files, 1):
            if is_mbox(file):
                size = max(file.stat().st_size, 1)
                for batch in _batches(iter_mbox(file)):
                    mail = [raw for raw, _ in batch if mailparse.looks_like_mail(raw)]
                    report.not_mail += len(batch) - len(mail)
                    with transaction.atomic():
                        for result in ingest_batch(mailbox, mail):
                            count_into(report, *result)
                    # A stored batch leaves model objects that refer to each other (and to
                    # the raw bytes); collect them now rather than whenever the cycle
                    # collector gets round to it, so memory stays flat however big the mbox.
                    gc.collect()
                    offset = batch[-1][1]
                    progress(f"{file.name}: {report.seen} messages, {100 * offset // size}%")
            else:
                count_into(report, *ingest_message(mailbox, file.read_bytes()))
                progress(f"[{number}/{len(files)}] {file.name}")
    return report


def _batches(messages: Iterator[tuple[bytes, int]]) -> Iterator[list[tuple[bytes, int]]]:
    batch: list[tuple[bytes, int]] = []
    size = 0
    for item in messages:
        batch.append(item)
        size += len(item[0])
        if len(batch) == BATCH_SIZE or size >= BATCH_BYTES:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


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

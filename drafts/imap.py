"""Fetching mail over IMAP, exactly once, and within seconds where the server has IDLE.

Per folder we keep UIDVALIDITY and the last UID stored. Messages are fetched with
BODY.PEEK[] (which leaves them unread), stored and committed through the same
``ingest_message`` as file imports, and only then is the last UID advanced and \\Seen
set. A crash anywhere before the commit loses nothing: the next run fetches the message
again, and the content hash keeps it from being stored twice.

When UIDVALIDITY changes (the server renumbered the folder), the folder is read again
from the start, but a message whose Message-ID and size we already hold is skipped
without downloading it.
"""

from __future__ import annotations

import imaplib
import logging
import os
import re
import select
import ssl
import threading
import time
from collections.abc import Callable

from django.conf import settings
from django.db import close_old_connections

from drafts.ingest import ImportReport, count_into, ingest_message
from drafts.models import Mailbox, Message

log = logging.getLogger(__name__)

UID_RE = re.compile(rb"\bUID (\d+)")
SIZE_RE = re.compile(rb"\bRFC822\.SIZE (\d+)")
MESSAGE_ID_RE = re.compile(rb"<[^<>\s]+>")
MAX_BACKOFF = 300.0
IMAP_ERRORS = (imaplib.IMAP4.error, OSError, EOFError)


class IMAPConfigError(ValueError):
    """The mailbox's IMAP settings are incomplete or wrong."""


def connect(mailbox: Mailbox) -> imaplib.IMAP4:
    """A logged-in connection to the mailbox's server (TLS unless set to "none")."""
    password = os.environ.get(mailbox.imap_password_env, "")
    if not (mailbox.imap_host and mailbox.imap_user and password):
        raise IMAPConfigError(
            f"Mailbox {mailbox.name}: IMAP needs a host, a user and the password in "
            f"${mailbox.imap_password_env}"
        )
    context = ssl.create_default_context(cafile=settings.IMAP_CA_FILE or None)
    timeout = settings.EMAIL_TIMEOUT
    if mailbox.imap_security == "ssl":
        client = imaplib.IMAP4_SSL(
            mailbox.imap_host, mailbox.imap_port, ssl_context=context, timeout=timeout
        )
    else:
        client = imaplib.IMAP4(mailbox.imap_host, mailbox.imap_port, timeout=timeout)
        if mailbox.imap_security == "starttls":
            client.starttls(ssl_context=context)
    client.login(mailbox.imap_user, password)
    return client


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def append_sent(mailbox: Mailbox, raw: bytes) -> None:
    """Keep a sent reply in the mailbox's Sent folder, read, as a mail client would."""
    client = connect(mailbox)
    folder = _quoted(mailbox.imap_sent_folder)
    try:
        for _ in range(2):
            status, detail = client.append(
                folder, "(\\Seen)", imaplib.Time2Internaldate(time.time()), raw
            )
            if status == "OK" or b"TRYCREATE" not in b" ".join(detail or [b""]):
                break
            client.create(folder)  # the server says the folder does not exist yet
        if status != "OK":
            raise IMAPConfigError(
                f"Mailbox {mailbox.name}: could not add to {mailbox.imap_sent_folder!r}: {detail}"
            )
    finally:
        _logout(client)


def _select(client: imaplib.IMAP4, mailbox: Mailbox) -> int:
    folder = _quoted(mailbox.imap_folder)
    status, _ = client.select(folder)
    if status != "OK":
        raise IMAPConfigError(f"Mailbox {mailbox.name}: no folder {mailbox.imap_folder!r}")
    return int(client.response("UIDVALIDITY")[1][0])


def _new_uids(client: imaplib.IMAP4, after: int) -> list[int]:
    _, data = client.uid("SEARCH", f"UID {after + 1}:*")
    # "n:*" always matches the highest UID, even when it is below n.
    return sorted(uid for uid in map(int, (data[0] or b"").split()) if uid > after)


def _uid_set(uids: list[int]) -> str:
    return ",".join(map(str, uids))


def _fetch(client: imaplib.IMAP4, uids: list[int]) -> dict[int, bytes]:
    _, data = client.uid("FETCH", _uid_set(uids), "(UID BODY.PEEK[])")
    found = {}
    for item in data:
        if isinstance(item, tuple) and (match := UID_RE.search(item[0])):
            found[int(match.group(1))] = item[1]
    return found


def _already_stored(client: imaplib.IMAP4, mailbox: Mailbox, uids: list[int]) -> set[int]:
    """UIDs whose message we hold already: same Message-ID and same size.

    Used after a UIDVALIDITY change, so a renumbered folder is not downloaded again.
    """
    if not uids:
        return set()
    _, data = client.uid(
        "FETCH", _uid_set(uids), "(UID RFC822.SIZE BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])"
    )
    seen: dict[int, tuple[str, int]] = {}
    for item in data:
        if not isinstance(item, tuple):
            continue
        uid, size = UID_RE.search(item[0]), SIZE_RE.search(item[0])
        found = MESSAGE_ID_RE.search(item[1])
        if uid and size and found:
            seen[int(uid.group(1))] = (found.group(0).decode(errors="replace"), int(size.group(1)))
    stored = set(
        Message.objects.filter(
            mailbox=mailbox, message_id__in={mid for mid, _ in seen.values()}
        ).values_list("message_id", "size")
    )
    return {uid for uid, key in seen.items() if key in stored}


def fetch_new(
    client: imaplib.IMAP4, mailbox: Mailbox, progress: Callable[[str], None] = lambda _: None
) -> ImportReport:
    """Store what is new in the mailbox's folder, over an open connection."""
    report = ImportReport()
    uidvalidity = _select(client, mailbox)
    resync = uidvalidity != mailbox.imap_uidvalidity
    if resync:
        log.info("Mailbox %s: UIDVALIDITY is now %s; resynchronising", mailbox.name, uidvalidity)
        Mailbox.objects.filter(pk=mailbox.pk).update(imap_uidvalidity=uidvalidity, imap_last_uid=0)
        mailbox.imap_uidvalidity, mailbox.imap_last_uid = uidvalidity, 0
    uids = _new_uids(client, mailbox.imap_last_uid)
    batch_size = settings.IMAP_BATCH_SIZE
    for start in range(0, len(uids), batch_size):
        batch = uids[start : start + batch_size]
        known = _already_stored(client, mailbox, batch) if resync else set()
        report.duplicates += len(known)
        wanted = [uid for uid in batch if uid not in known]
        messages = _fetch(client, wanted) if wanted else {}
        for uid in wanted:
            if uid in messages:  # absent: deleted on the server meanwhile
                count_into(report, *ingest_message(mailbox, messages[uid]))
        # Only now, with the batch committed, do we move past it and mark it read.
        Mailbox.objects.filter(pk=mailbox.pk).update(imap_last_uid=batch[-1])
        mailbox.imap_last_uid = batch[-1]
        if mailbox.imap_mark_seen:
            client.uid("STORE", _uid_set(batch), "+FLAGS", "(\\Seen)")
        progress(f"{mailbox.name}: {start + len(batch)}/{len(uids)} fetched")
    return report


def fetch_mailbox(
    mailbox: Mailbox, progress: Callable[[str], None] = lambda _: None
) -> ImportReport:
    """Connect, store the mailbox's new messages, disconnect."""
    client = connect(mailbox)
    try:
        return fetch_new(client, mailbox, progress)
    finally:
        _logout(client)


def _logout(client: imaplib.IMAP4) -> None:
    try:
        client.logout()
    except IMAP_ERRORS:
        pass


def fetch_all() -> str:
    """The django-q2 schedule's task: fetch every mailbox that has IMAP configured."""
    results = []
    for mailbox in Mailbox.objects.exclude(imap_host=""):
        try:
            results.append(f"{mailbox.name}: {fetch_mailbox(mailbox)}")
        except (*IMAP_ERRORS, IMAPConfigError) as exc:
            log.warning("Mailbox %s: fetching failed: %s", mailbox.name, exc)
            results.append(f"{mailbox.name}: failed: {exc}")
    return "; ".join(results) or "no mailbox has IMAP configured"


def ensure_schedule() -> bool:
    """Create (or update) the django-q2 schedule that polls IMAP, if any mailbox uses it."""
    from django_q.models import Schedule

    if not Mailbox.objects.exclude(imap_host="").exists():
        Schedule.objects.filter(func="drafts.imap.fetch_all").delete()
        return False
    Schedule.objects.update_or_create(
        func="drafts.imap.fetch_all",
        defaults={
            "cluster": settings.REPLYHUB_IO_QUEUE,  # polling never waits for the model
            "name": "Fetch mail (IMAP)",
            "schedule_type": Schedule.MINUTES,
            "minutes": max(settings.IMAP_POLL_MINUTES, 1),
            "repeats": -1,
        },
    )
    return True


# -- IDLE ---------------------------------------------------------------------------------


def _readable(client: imaplib.IMAP4, seconds: float) -> bool:
    sock = client.socket()
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    return bool(select.select([sock], [], [], seconds)[0])


def idle(client: imaplib.IMAP4, stop: threading.Event, seconds: float) -> bool:
    """Wait in IMAP IDLE until the server reports new mail, ``seconds`` pass or ``stop``.

    Returns True when the server reported a change. (imaplib has IDLE only from
    Python 3.14, so the command is spoken here directly.)
    """
    tag = client._new_tag()
    client.send(tag + b" IDLE\r\n")
    if not client.readline().startswith(b"+"):
        raise imaplib.IMAP4.error("the server refused IDLE")
    changed = False
    deadline = time.monotonic() + seconds
    try:
        while not stop.is_set() and time.monotonic() < deadline:
            if not _readable(client, 1.0):
                continue
            line = client.readline()
            if not line:
                raise imaplib.IMAP4.abort("the server closed the connection during IDLE")
            if line.startswith(b"*") and (b"EXISTS" in line or b"RECENT" in line):
                changed = True
                break
    finally:
        client.send(b"DONE\r\n")
        while not (line := client.readline()).startswith(tag):
            if not line:
                raise imaplib.IMAP4.abort("the server closed the connection after IDLE")
    return changed


def watch(
    mailbox_id: int,
    stop: threading.Event,
    idle_seconds: float = 600,
    on_fetch: Callable[[ImportReport], None] = lambda _: None,
) -> None:
    """Fetch, then wait for new mail (IDLE, or polling without it), until ``stop``.

    Connection errors are logged and retried with growing delays (1 s to 5 min).
    """
    backoff = 1.0
    while not stop.is_set():
        try:
            close_old_connections()
            mailbox = Mailbox.objects.get(pk=mailbox_id)
            client = connect(mailbox)
            try:
                while not stop.is_set():
                    on_fetch(fetch_new(client, mailbox))
                    backoff = 1.0
                    if "IDLE" in client.capabilities:
                        idle(client, stop, idle_seconds)
                    else:
                        stop.wait(settings.IMAP_POLL_MINUTES * 60)
            finally:
                _logout(client)
        except (*IMAP_ERRORS, IMAPConfigError) as exc:
            log.warning("Mailbox %s: %s; reconnecting in %.0f s", mailbox_id, exc, backoff)
            stop.wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

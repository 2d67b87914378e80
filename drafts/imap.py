"""Fetching mail over IMAP, exactly once.

Per folder we keep UIDVALIDITY and the last UID stored. Messages are fetched with
BODY.PEEK[] (which leaves them unread), stored and committed through the same
``ingest_message`` as file imports, and only then is the last UID advanced and \\Seen
set. A crash anywhere before the commit loses nothing: the next run fetches the message
again, and the content hash keeps it from being stored twice.
"""

from __future__ import annotations

import imaplib
import logging
import os
import re
import ssl
from collections.abc import Callable

from django.conf import settings
from django.db import transaction

from drafts.ingest import ImportReport, count_into, ingest_message
from drafts.models import Mailbox

log = logging.getLogger(__name__)

UID_RE = re.compile(rb"\bUID (\d+)")


class IMAPConfigError(ValueError):
    """The mailbox's IMAP settings are incomplete."""


def connect(mailbox: Mailbox) -> imaplib.IMAP4:
    """A logged-in connection to the mailbox's server."""
    password = os.environ.get(mailbox.imap_password_env, "")
    if not (mailbox.imap_host and mailbox.imap_user and password):
        raise IMAPConfigError(
            f"Mailbox {mailbox.name}: IMAP needs a host, a user and the password in "
            f"${mailbox.imap_password_env}"
        )
    context = ssl.create_default_context()
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


def _new_uids(client: imaplib.IMAP4, after: int) -> list[int]:
    _, data = client.uid("SEARCH", f"UID {after + 1}:*")
    # "n:*" always matches the highest UID, even when it is below n.
    return sorted(uid for uid in map(int, (data[0] or b"").split()) if uid > after)


def _fetch(client: imaplib.IMAP4, uids: list[int]) -> dict[int, bytes]:
    _, data = client.uid("FETCH", ",".join(map(str, uids)), "(UID BODY.PEEK[])")
    found = {}
    for item in data:
        if isinstance(item, tuple) and (match := UID_RE.search(item[0])):
            found[int(match.group(1))] = item[1]
    return found


def fetch_mailbox(
    mailbox: Mailbox, progress: Callable[[str], None] = lambda line: None
) -> ImportReport:
    """Store the mailbox's new messages; returns what was added."""
    report = ImportReport()
    client = connect(mailbox)
    try:
        status, _ = client.select(_quote(mailbox.imap_folder))
        if status != "OK":
            raise IMAPConfigError(f"Mailbox {mailbox.name}: no folder {mailbox.imap_folder!r}")
        uidvalidity = int(client.response("UIDVALIDITY")[1][0])
        if uidvalidity != mailbox.imap_uidvalidity:
            # A new UID space: start over; the content hash skips what is already stored.
            log.info("Mailbox %s: UIDVALIDITY is %s, reading all", mailbox.name, uidvalidity)
            Mailbox.objects.filter(pk=mailbox.pk).update(
                imap_uidvalidity=uidvalidity, imap_last_uid=0
            )
            mailbox.imap_uidvalidity, mailbox.imap_last_uid = uidvalidity, 0
        uids = _new_uids(client, mailbox.imap_last_uid)
        batch_size = settings.IMAP_BATCH_SIZE
        for start in range(0, len(uids), batch_size):
            batch = uids[start : start + batch_size]
            messages = _fetch(client, batch)
            for uid in batch:
                if uid in messages:  # absent: deleted on the server meanwhile
                    count_into(report, *ingest_message(mailbox, messages[uid]))
            with transaction.atomic():
                Mailbox.objects.filter(pk=mailbox.pk).update(imap_last_uid=batch[-1])
            mailbox.imap_last_uid = batch[-1]
            if mailbox.imap_mark_seen:
                client.uid("STORE", ",".join(map(str, batch)), "+FLAGS", "(\\Seen)")
            progress(f"{mailbox.name}: {start + len(batch)}/{len(uids)} fetched")
    finally:
        try:
            client.logout()
        except (imaplib.IMAP4.error, OSError):
            pass
    return report


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def fetch_all() -> str:
    """The django-q2 schedule's task: fetch every mailbox that has IMAP configured."""
    results = []
    for mailbox in Mailbox.objects.exclude(imap_host=""):
        try:
            results.append(f"{mailbox.name}: {fetch_mailbox(mailbox)}")
        except (imaplib.IMAP4.error, OSError, IMAPConfigError) as exc:
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
            "name": "Fetch mail (IMAP)",
            "schedule_type": Schedule.MINUTES,
            "minutes": max(settings.IMAP_POLL_MINUTES, 1),
            "repeats": -1,
        },
    )
    return True

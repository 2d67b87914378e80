"""Emails submitted through the API, turned into the bytes that ``ingest_message`` stores.

Raw RFC 822 is stored as it came, so deduplication, threading and draft queueing are
exactly those of a mail import. An email given as JSON fields is first written as an
RFC 822 message, deterministically: the same fields give the same bytes, and the
Message-ID, unless given, is derived from them. A submission without a date gets the
current time, which would make a retry's bytes differ from the first try's; so before
storing, the message of that Message-ID in the mailbox is rebuilt with its own date, and
if the bytes match, the retry is the stored message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email
from django.db import transaction
from django.utils import timezone

from drafts import mailparse
from drafts.access import mailboxes_for, sees_all_mailboxes
from drafts.api import callbacks
from drafts.api.http import ApiError, bad_request, integer_field, string_field
from drafts.api.tokens import ApiToken
from drafts.ingest import ingest_message
from drafts.models import Draft, Mailbox, Message

MAX_TEXT = 1_000_000  # characters of an email's text given as a field
HEADER_FIELDS = ("from", "to", "subject", "message_id", "in_reply_to")


@dataclass(frozen=True)
class Submission:
    """What the client sent: the mail (bytes, or fields to build them) and the options."""

    raw: bytes | None
    fields: dict[str, Any] | None
    mailbox_id: int | None
    callback_url: str | None
    raw_field: str | None = None  # where the raw bytes came from, for errors: "raw" or the body


@dataclass(frozen=True)
class Stored:
    message: Message
    created: bool
    callback: callbacks.ApiCallback | None


def parse_datetime_field(value: str, field: str) -> datetime:
    """An ISO 8601 date-time with a time zone (RFC 3339), or 400 naming ``field``."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise bad_request(
            field, f"“{field}” must be an ISO 8601 date-time, e.g. 2025-01-31T09:30:00+08:00."
        ) from exc
    if parsed.tzinfo is None:
        raise bad_request(field, f"“{field}” must include a time zone, e.g. 2025-01-31T09:30:00Z.")
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:  # 0001-01-01T00:00:00+01:00 is before the year 1 in UTC
        raise bad_request(field, f"“{field}” is out of range.") from exc


def is_number(value: str) -> bool:
    """Digits 0-9 only (str.isdigit also takes ² and Arabic-Indic digits)."""
    return value.isascii() and value.isdigit()


def query_options(query: dict[str, str]) -> tuple[int | None, str | None]:
    """``mailbox`` and ``callback_url`` from the query string (how raw mail brings them)."""
    mailbox = query.get("mailbox")
    if mailbox is not None and not (is_number(mailbox) and 1 <= int(mailbox) < 2**63):
        raise bad_request("mailbox", "“mailbox” must be a mailbox id (a positive integer).")
    return (int(mailbox) if mailbox else None), _callback_url(query.get("callback_url"))


def from_json(data: dict[str, Any], query: dict[str, str]) -> Submission:
    """A submission from a JSON body: ``{"raw": base64}`` or the email's fields. Options in
    the body win over those in the query string."""
    mailbox_id, callback_url = query_options(query)
    if "mailbox" in data:
        mailbox_id = integer_field(data, "mailbox", minimum=1)
    if "callback_url" in data:
        callback_url = _callback_url(string_field(data, "callback_url", max_length=2000))
    if "raw" in data:
        given = [name for name in (*HEADER_FIELDS, "text", "date") if name in data]
        if given:
            raise bad_request(
                given[0], "Send either “raw” or the email's fields, not both.", "conflict"
            )
        encoded = string_field(data, "raw", required=True, max_length=10**9)
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise bad_request("raw", f"“raw” is not valid base64: {exc}.") from exc
        return Submission(raw, None, mailbox_id, callback_url, raw_field="raw")
    fields = {
        "from": string_field(data, "from", required=True, max_length=998),
        "to": string_field(data, "to", max_length=998),
        "subject": string_field(data, "subject", max_length=998) or "",
        "text": string_field(data, "text", required=True, max_length=MAX_TEXT),
        "message_id": string_field(data, "message_id", max_length=490),
        "in_reply_to": string_field(data, "in_reply_to", max_length=490),
        "date": None,
    }
    if (date := string_field(data, "date", max_length=64)) is not None:
        fields["date"] = parse_datetime_field(date, "date")
    for name in HEADER_FIELDS:
        if fields[name] and ("\r" in fields[name] or "\n" in fields[name]):
            raise bad_request(name, f"“{name}” must not contain a line break.")
    if not _is_address(fields["from"]):
        raise bad_request("from", "“from” must be an email address, e.g. Li Wei <li@example.com>.")
    if fields["to"] and not _is_address(fields["to"]):
        raise bad_request("to", "“to” must be an email address.")
    for name in ("message_id", "in_reply_to"):
        if fields[name] is not None:
            fields[name] = _angle_id(fields[name], name)
    return Submission(None, fields, mailbox_id, callback_url)


def from_rfc822(body: bytes, query: dict[str, str]) -> Submission:
    """A submission of raw mail (Content-Type: message/rfc822); options in the query string."""
    return Submission(body, None, *query_options(query))


def _callback_url(url: str | None) -> str | None:
    if url is None:
        return None
    if len(url) > 2000:
        raise bad_request("callback_url", "“callback_url” is longer than 2000 characters.")
    if any(ord(c) < 32 or ord(c) == 127 for c in url):
        raise bad_request("callback_url", "“callback_url” must not contain control characters.")
    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError as exc:
        raise bad_request("callback_url", "“callback_url” must be an http or https URL.") from exc
    return url


def _is_address(value: str) -> bool:
    """``value`` is an address, with or without a name: li@example.com, Li <li@example.com>."""
    try:
        validate_email(parseaddr(value)[1])
    except ValidationError:
        return False
    return True


def _angle_id(value: str, field: str) -> str:
    """A Message-ID in angle brackets: ``<id@host>``; ``id@host`` is accepted too."""
    inner = value.strip().removeprefix("<").removesuffix(">")
    if not inner or any(c.isspace() or c in "<>" for c in inner) or "@" not in inner:
        raise bad_request(field, f"“{field}” must look like <something@host>.")
    return f"<{inner}>"


def mailbox_for(user: object, mailbox_id: int | None) -> Mailbox:
    """The mailbox a submission goes to: the one named, if the user may use it; else the
    default mailbox for supervisors, or a reviewer's only mailbox."""
    allowed = mailboxes_for(user)
    if mailbox_id is not None:
        mailbox = allowed.filter(pk=mailbox_id).first()
        if mailbox is None:
            raise bad_request("mailbox", f"There is no mailbox {mailbox_id} that you may use.")
        return mailbox
    if sees_all_mailboxes(user):
        return Mailbox.default()
    mine = list(allowed[:2])
    if len(mine) == 1:
        return mine[0]
    if not mine:
        raise bad_request("mailbox", "You review no mailbox; ask an admin to assign you one.")
    raise bad_request("mailbox", "You review several mailboxes: say which one (“mailbox”).")


def build_email(fields: dict[str, Any], mailbox: Mailbox, date: datetime) -> bytes:
    """The RFC 822 bytes of an email given as fields; the same fields give the same bytes."""
    message = EmailMessage(policy=policy.SMTP)
    try:
        message["From"] = fields["from"]
        message["To"] = fields["to"] or mailbox.address
        message["Subject"] = fields["subject"]
        message["Date"] = format_datetime(date.astimezone(UTC))
        message["Message-ID"] = fields["message_id"] or _derived_id(fields, mailbox)
        if fields["in_reply_to"]:
            message["In-Reply-To"] = fields["in_reply_to"]
            message["References"] = fields["in_reply_to"]
    except (ValueError, TypeError, IndexError) as exc:  # a header the email package refuses
        raise bad_request(None, f"These fields do not make an email: {exc}.") from exc
    message.set_content(fields["text"])
    return message.as_bytes()


def _derived_id(fields: dict[str, Any], mailbox: Mailbox) -> str:
    key = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in fields.items()}
    digest = hashlib.sha256(json.dumps([mailbox.pk, key], sort_keys=True).encode()).hexdigest()
    return f"<api-{digest[:40]}@replyhub.invalid>"


def _stored_twin(fields: dict[str, Any], mailbox: Mailbox) -> Message | None:
    """The message these fields were stored as before (a retry), if any."""
    message_id = fields["message_id"] or _derived_id(fields, mailbox)
    for message in Message.objects.filter(mailbox=mailbox, message_id=message_id).only(
        "id", "sha256", "date"
    ):
        if message.date is None:
            continue
        raw = build_email(fields, mailbox, fields["date"] or message.date)
        if mailparse.digest(raw) == message.sha256:
            return Message.objects.get(pk=message.pk)
    return None


def store(submission: Submission, user: object, token: ApiToken, base_url: str) -> Stored:
    """Store the submitted email as an import would, and register its callback."""
    mailbox = mailbox_for(user, submission.mailbox_id)
    raw = submission.raw
    with transaction.atomic():
        if submission.fields is not None:
            twin = _stored_twin(submission.fields, mailbox)
            if twin is None:
                date = submission.fields["date"] or timezone.now().replace(microsecond=0)
                raw = build_email(submission.fields, mailbox, date)
        else:
            twin = None
        if twin is not None:
            message, created = twin, False
        else:
            try:
                message, created = ingest_message(mailbox, raw or b"")
            except mailparse.NotMailError as exc:
                raise ApiError(
                    400, "not_mail", f"This is not an email message: {exc}.", submission.raw_field
                ) from exc
        draft = Draft.objects.filter(message=message).first()
        callback = None
        if submission.callback_url and draft is not None:
            callback = callbacks.ApiCallback.objects.filter(
                draft=draft, token=token, url=submission.callback_url
            ).first() or callbacks.register(draft, token, submission.callback_url, base_url)
    return Stored(message, created, callback)

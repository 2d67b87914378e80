"""Turn raw RFC 822 bytes into the fields ReplyHub stores. Never raises on bad mail."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses, parseaddr, parsedate_to_datetime

import nh3

HEADER_LINE = re.compile(rb"^[!-9;-~]+:")
REPLY_PREFIX = re.compile(r"^\s*((re|fwd?|aw|wg|回复|答复|转发)\s*[:：]\s*)+", re.IGNORECASE)
MAX_TEXT_CHARS = 200_000


class NotMailError(ValueError):
    """The bytes are not an email message."""


@dataclass
class ParsedMail:
    """What ingestion stores about one message."""

    sha256: str
    message_id: str
    in_reply_to: str
    references: list[str]
    subject: str
    from_name: str
    from_address: str
    reply_to: str
    to: str
    date: datetime | None
    text: str
    html: str
    headers: list[list[str]]
    auto_kind: str
    defects: list[str] = field(default_factory=list)


def looks_like_mail(raw: bytes) -> bool:
    """True when the bytes start with an RFC 822 header line (after an mbox From_ line)."""
    lines = raw.lstrip(b"\r\n").split(b"\n", 2)
    if lines and lines[0].startswith(b"From "):
        lines = lines[1:]
    return bool(lines) and bool(HEADER_LINE.match(lines[0]))


def normalize_subject(subject: str) -> str:
    """The subject without reply and forward prefixes (Re:, Fwd:, 回复:, 答复:, 转发:)."""
    return REPLY_PREFIX.sub("", subject).strip()


def _ids(value: str) -> list[str]:
    return re.findall(r"<[^<>\s]+>", value or "")


def _address(value: str) -> tuple[str, str]:
    """(display name, address-spec); a display name never stands in for the address."""
    try:
        pairs = getaddresses([value])
    except Exception:
        pairs = [parseaddr(value)]
    name, address = pairs[0] if pairs else ("", "")
    if "@" not in address:
        address = ""
    return name.strip(), address.strip().lower()


def _header(msg: EmailMessage, name: str, defects: list[str]) -> str:
    try:
        value = msg.get(name)
        return str(value).strip() if value is not None else ""
    except Exception as exc:  # a header the policy cannot decode
        defects.append(f"header {name}: {exc}")
        raw = [v for k, v in msg.raw_items() if k.lower() == name.lower()]
        return str(raw[0]).strip() if raw else ""


def _part_text(part: EmailMessage, defects: list[str]) -> str:
    try:
        return part.get_content()
    except Exception:
        payload = part.get_payload(decode=True) or b""
        charset = part.get_content_charset() or "utf-8"
        for candidate in (charset, "gb18030" if "gb" in charset else "utf-8"):
            try:
                return payload.decode(candidate)
            except (LookupError, UnicodeDecodeError):
                continue
        defects.append(f"undecodable {part.get_content_type()} part in {charset}")
        return payload.decode("utf-8", errors="replace")


def _bodies(msg: EmailMessage, defects: list[str]) -> tuple[str, str]:
    text_parts, html_parts = [], []
    for part in msg.walk():
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            continue
        kind = part.get_content_type()
        if kind == "text/plain":
            text_parts.append(_part_text(part, defects))
        elif kind == "text/html":
            html_parts.append(_part_text(part, defects))
    html = "\n".join(html_parts)
    text = "\n".join(text_parts) or html_to_text(html)
    return text[:MAX_TEXT_CHARS], html


def html_to_text(html: str) -> str:
    """Readable text from HTML: tags dropped, block ends as line breaks."""
    html = re.sub(r"(?is)<(script|style|head)\b.*?</\1>", "", html)
    html = re.sub(r"(?i)<br\s*/?>|</(p|div|li|tr|h\d)>", "\n", html)
    text = nh3.clean(html, tags=set())
    for entity, char in (("&nbsp;", " "), ("&lt;", "<"), ("&gt;", ">"), ("&amp;", "&")):
        text = text.replace(entity, char)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def sanitize_html(html: str) -> str:
    """HTML safe to show staff: no scripts, handlers, forms, or remote/`data:` URLs."""
    if not html:
        return ""
    return nh3.clean(
        html,
        tags=nh3.ALLOWED_TAGS - {"img"},
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )


def auto_kind(msg: EmailMessage, from_address: str) -> str:
    """Why this message must not get a draft, or "" if it is a person's email."""
    auto = str(msg.get("Auto-Submitted", "") or "").strip().lower()
    if auto and auto != "no":
        return "auto-reply"
    if str(msg.get("Precedence", "") or "").strip().lower() in ("bulk", "junk", "list"):
        return "bulk"
    if msg.get("List-Id") or msg.get("List-Unsubscribe"):
        return "list"
    if msg.get("X-Auto-Response-Suppress") or msg.get("X-Autoreply") or msg.get("X-Autorespond"):
        return "auto-reply"
    if str(msg.get("Return-Path", "") or "").strip() == "<>":
        return "bounce"
    if from_address.startswith(("mailer-daemon@", "postmaster@")):
        return "bounce"
    if msg.get_content_type() == "multipart/report":
        return "bounce"
    return ""


def parse(raw: bytes) -> ParsedMail:
    """Parse ``raw``; decoding problems are recorded as defects, never raised."""
    if not looks_like_mail(raw):
        raise NotMailError("no RFC 822 header at the start")
    if raw.startswith(b"From "):
        raw = raw.split(b"\n", 1)[1] if b"\n" in raw else b""
    digest = hashlib.sha256(raw).hexdigest()
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    defects = [type(d).__name__ for d in msg.defects]
    from_name, from_address = _address(_header(msg, "From", defects))
    _, reply_to = _address(_header(msg, "Reply-To", defects))
    message_id = (_ids(_header(msg, "Message-ID", defects)) or [""])[0]
    if not message_id:
        message_id = f"<synthetic-{digest[:32]}@replyhub.invalid>"
    date = None
    if date_header := _header(msg, "Date", defects):
        try:
            date = parsedate_to_datetime(date_header)
        except (TypeError, ValueError):
            defects.append(f"unparsable Date: {date_header[:80]}")
    if date is not None and date.tzinfo is None:
        date = None
    try:
        text, html = _bodies(msg, defects)
    except Exception as exc:
        defects.append(f"body: {exc}")
        text, html = raw.decode("utf-8", errors="replace"), ""
    headers = []
    for key, value in msg.raw_items():
        headers.append([key, str(value)[:2000]])
    return ParsedMail(
        sha256=digest,
        message_id=message_id[:998],
        in_reply_to=(_ids(_header(msg, "In-Reply-To", defects)) or [""])[0],
        references=_ids(_header(msg, "References", defects)),
        subject=_header(msg, "Subject", defects)[:998],
        from_name=from_name[:300],
        from_address=from_address[:320],
        reply_to=reply_to[:320],
        to=_header(msg, "To", defects)[:2000],
        date=date,
        text=text,
        html=sanitize_html(html),
        headers=headers,
        auto_kind=auto_kind(msg, from_address),
        defects=defects,
    )


def format_address(name: str, address: str) -> str:
    """A header-safe "Name <address>"."""
    username, _, domain = address.partition("@")
    return str(Address(display_name=name, username=username, domain=domain))

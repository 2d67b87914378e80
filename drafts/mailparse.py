"""Turn raw RFC 822 bytes into the fields ReplyHub stores. Never raises on bad mail.

Whatever a message contains, ``parse`` returns a ParsedMail: problems become short
human-readable strings in ``defects``, and the work per message is bounded by the
MAX_* constants below (parts read, nesting, header sizes, text sizes). The raw bytes are
never changed; the caller stores them as they came.
"""

from __future__ import annotations

import hashlib
import io
import mimetypes
import quopri
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.feedparser import BytesFeedParser
from email.generator import BytesGenerator
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import EmailPolicy

from drafts import mailtext, quoting
from drafts.mailtext import format_address as format_address  # re-exported
from drafts.mailtext import html_to_text as html_to_text  # re-exported
from drafts.mailtext import sanitize_html as sanitize_html  # re-exported

HEADER_LINE = re.compile(rb"^[!-9;-~]+:")
REPLY_PREFIX = re.compile(
    r"^\s*((re|fwd?|aw|wg|回复|答复|转发|回覆|答覆|轉寄|轉發)\s*[:：]\s*)+", re.IGNORECASE
)

MAX_MESSAGE_BYTES = 25 * 1024 * 1024  # bigger messages: headers only, oversize=True
MAX_LINES = 1_000_000  # more lines than any real message of that size: headers only
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024  # bigger attachments keep their name and size only
MAX_PARTS = 500  # MIME parts read; the rest are counted in a defect
MAX_DEPTH = 50  # MIME nesting read
MAX_HEADERS = 1_000  # header lines kept in ParsedMail.headers
MAX_HEADER_CHARS = 10_000  # of one header value decoded and stored
MAX_PARSED_HEADER_CHARS = 2_000  # of one header value the stdlib parser reads
MAX_HEADER_BYTES = 1024 * 1024  # of the header block read when the body is not
MAX_TEXT_CHARS = 200_000  # of the text and model_text
MAX_DEFECTS = 50
MAX_REFERENCES = 100


class NotMailError(ValueError):
    """The bytes are not an email message."""


@dataclass(frozen=True)
class ParsedAttachment:
    """A file that came with a message. ``data`` is b"" when it was over the size limit."""

    filename: str
    content_type: str
    size: int
    data: bytes
    inline: bool


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
    cc: str
    # The address-specs of To and Cc, each once: whom a reply to all goes to.
    recipients: list[str]
    date: datetime | None
    text: str
    html: str
    headers: list[list[str]]
    auto_kind: str
    defects: list[str] = field(default_factory=list)
    # The text without quoted history and signatures: what the model reads.
    model_text: str = ""
    # The HTML sanitized like ``html`` but keeping http(s) images, for when a reviewer asks.
    html_with_images: str = ""
    attachments: list[ParsedAttachment] = field(default_factory=list)
    # Over MAX_MESSAGE_BYTES (or MAX_LINES): only the headers were read.
    oversize: bool = False


def looks_like_mail(raw: bytes) -> bool:
    """True when the bytes start with an RFC 822 header line (after an mbox From_ line)."""
    lines = raw.lstrip(b"\r\n").split(b"\n", 2)
    if lines and lines[0].startswith(b"From "):
        lines = lines[1:]
    return bool(lines) and bool(HEADER_LINE.match(lines[0]))


def normalize_subject(subject: str) -> str:
    """The subject without reply and forward prefixes (Re:, Fwd:, 回复:, 答复:, 转发:)."""
    return REPLY_PREFIX.sub("", subject).strip()


# ---- a bounded parser ----------------------------------------------------------------


_MIME_HEADERS = ("content-type", "content-disposition", "content-transfer-encoding")


class _TextHeader:
    """A MIME header kept as its text, which is all anyone reads of it.

    The feed parser asks for every part's Content-Type (type, boundary, charset); the
    stdlib's structured parser takes time quadratic in a hostile value's length and
    can hit RecursionError, so these headers are not given to it.
    """

    max_count = None

    @classmethod
    def parse(cls, value: str, kwds: dict[str, object]) -> None:
        kwds["parse_tree"] = None  # never folded: attached messages are written as received
        kwds["decoded"] = value


class _BoundedHeaders(HeaderRegistry):
    """policy.default's header objects, built from at most MAX_PARSED_HEADER_CHARS.

    MIME headers stay text (see _TextHeader); any other header the stdlib fails to
    parse becomes an empty one instead of an exception.
    """

    def __init__(self) -> None:
        super().__init__()
        for name in _MIME_HEADERS:
            self.map_to_type(name, _TextHeader)

    def __call__(self, name: str, value: str) -> BaseHeader:
        try:
            return super().__call__(name, value[:MAX_PARSED_HEADER_CHARS])
        except Exception:
            return self["x-unparsable"](name, "")


class _MimeTextPolicy(EmailPolicy):
    """policy.default, but MIME headers are read as the text their _TextHeader would hold.

    The stdlib reads Content-Type and Content-Transfer-Encoding many times per part, and
    building a header object for every read took a third of the parse time.
    """

    def header_fetch_parse(self, name: str, value: str) -> str:
        if name.lower() not in _MIME_HEADERS or type(value) is not str:
            return super().header_fetch_parse(name, value)
        value = value.replace("\r", "").replace("\n", "")[:MAX_PARSED_HEADER_CHARS]
        if value.isascii():
            return value
        try:  # raw 8-bit bytes (surrogate-escaped) become U+FFFD, as in BaseHeader
            return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        except UnicodeEncodeError:  # lone surrogates: the empty header _BoundedHeaders makes
            return ""


_POLICY = _MimeTextPolicy(header_factory=_BoundedHeaders())
# Attached messages are written back out as they came: no refolding, no re-parsing.
_AS_RECEIVED = _POLICY.clone(refold_source="none", max_line_length=0)


class _StopParsing(Exception):
    """The message has more parts, or deeper nesting, than we read."""


class _BoundedFeedParser(BytesFeedParser):
    """The stdlib feed parser, stopped after MAX_PARTS parts or MAX_DEPTH levels."""

    def __init__(self) -> None:
        super().__init__(policy=_POLICY)
        self.parts = 0
        self.root: EmailMessage | None = None

    def _new_message(self) -> None:
        # The feed parser calls this for every part it starts; stopping here bounds the
        # time and memory a message can take, before any part is built.
        if self.parts >= MAX_PARTS:
            raise _StopParsing(f"more than {MAX_PARTS} MIME parts")
        if len(self._msgstack) >= MAX_DEPTH:
            raise _StopParsing(f"MIME parts nested deeper than {MAX_DEPTH} levels")
        super()._new_message()
        self.parts += 1
        self.root = self.root or self._cur


def _parse_tree(data: bytes) -> tuple[EmailMessage, str]:
    """The message tree, and why it is incomplete ("" when it is complete)."""
    parser = _BoundedFeedParser()
    try:
        for start in range(0, len(data), 1 << 16):
            parser.feed(data[start : start + (1 << 16)])
        return parser.close(), ""
    except _StopParsing as stop:
        assert parser.root is not None  # the root is built before any limit is reached
        unread = max(_count_parts(data) - parser.parts, 1)
        return parser.root, f"{stop}: {unread:,} more parts not read"


def _parse_headers_only(data: bytes) -> EmailMessage:
    """The top-level headers alone, from at most MAX_HEADER_BYTES."""
    head = data[:MAX_HEADER_BYTES]
    if end := re.search(rb"\r?\n\r?\n", head):
        head = head[: end.start()]
    try:
        return BytesParser(policy=_POLICY).parsebytes(head + b"\n\n", headersonly=True)
    except Exception:
        return EmailMessage(policy=_POLICY)


_BOUNDARY_PARAM = re.compile(rb'(?i)boundary\s*=\s*(?:"([^"\r\n]{1,200})"|([^\s;"]{1,200}))')
_DELIMITER = re.compile(rb"(?m)^--([^\r\n]{1,200}?)[ \t]*\r?$")


def _count_parts(data: bytes) -> int:
    """About how many MIME parts ``data`` has: one per delimiter line of a declared boundary."""
    boundaries = {quoted or bare for quoted, bare in _BOUNDARY_PARAM.findall(data)}
    return 1 + sum(1 for line in _DELIMITER.finditer(data) if line[1] in boundaries)


_RECOVERABLE = re.compile(r"(?m)^--([0-9A-Za-z'()+_,./:=? -]{1,70}?)[ \t]*\r?\n(?=[A-Za-z-]+:)")


def _recover_parts(msg: EmailMessage) -> tuple[EmailMessage, str] | None:
    """A multipart message whose boundary is missing or wrong, split at its delimiter lines."""
    body = msg.get_payload()
    match = _RECOVERABLE.search(body) if isinstance(body, str) else None
    if not match:
        return None
    head = f'Content-Type: {msg.get_content_type()}; boundary="{match[1]}"\n\n'
    tree, stopped = _parse_tree((head + body).encode("ascii", "surrogateescape"))
    return (tree, stopped) if tree.is_multipart() else None


# ---- headers -----------------------------------------------------------------------------


def _first_values(msg: EmailMessage) -> tuple[dict[str, str], dict[str, int]]:
    """Each header's first raw value by lower-case name, and how often each name occurs."""
    first: dict[str, str] = {}
    counts: dict[str, int] = {}
    for name, value in msg.raw_items():
        key = name.strip().lower()
        first.setdefault(key, str(value))
        counts[key] = counts.get(key, 0) + 1
    return first, counts


def _decoded(first: dict[str, str], name: str, hint: str | None, defects: list[str]) -> str:
    """The decoded value of header ``name`` ("" when absent); problems go to ``defects``."""
    raw = first.get(name.lower())
    if raw is None:
        return ""
    if len(raw) > MAX_HEADER_CHARS:
        defects.append(f"{name} header is {len(raw):,} characters; only {MAX_HEADER_CHARS:,} read")
    text, problems = mailtext.decode_header(raw[:MAX_HEADER_CHARS], hint)
    defects.extend(f"{name} header: {problem}" for problem in problems)
    return text


def _stored_headers(msg: EmailMessage, hint: str | None, defects: list[str]) -> list[list[str]]:
    """[name, decoded value] for the first MAX_HEADERS header lines."""
    stored = []
    for name, value in msg.raw_items():
        if len(stored) == MAX_HEADERS:
            defects.append(f"{len(msg) - MAX_HEADERS:,} more header lines not stored")
            break
        text, _ = mailtext.decode_header(str(value)[:MAX_HEADER_CHARS], hint)
        stored.append([name.strip(), text])
    return stored


# ---- body and attachments ------------------------------------------------------------------


@dataclass
class _Body:
    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[ParsedAttachment] = field(default_factory=list)


def _raw_header(part: EmailMessage, name: str) -> str:
    """The first raw value of header ``name`` in ``part``, unparsed ("" when absent)."""
    for key, value in part.raw_items():
        if key.strip().lower() == name:
            return str(value)
    return ""


def _payload_bytes(part: EmailMessage, where: str, defects: list[str]) -> bytes:
    """The decoded body of a leaf part; broken base64 is decoded as far as it goes."""
    data = part.get_payload(decode=True) or b""  # the exact bytes, transfer encoding undone
    encoding = _raw_header(part, "content-transfer-encoding").strip().lower()
    stdlib_saw = str(part.get("content-transfer-encoding", "")).lower()
    if encoding == "base64" and (
        stdlib_saw != "base64"  # "base64 " with a space: the stdlib leaves it encoded
        or any(type(d).__name__ == "InvalidBase64LengthDefect" for d in part.defects)
    ):  # the stdlib gave up and returned the base64 text itself
        data, broken = mailtext.decode_base64(str(part.get_payload()))
        if broken:
            defects.append(f"{where}: broken base64")
    elif encoding == "quoted-printable":
        if stdlib_saw != "quoted-printable":
            data = quopri.decodestring(data)
        if re.search(r"=(?![0-9A-Fa-f]{2}|\r?\n|$)", str(part.get_payload())):
            defects.append(f"{where}: broken quoted-printable")
    return data


def _part_text(part: EmailMessage, where: str, defects: list[str]) -> str:
    data = _payload_bytes(part, where, defects)
    try:
        charset = part.get_content_charset()
    except Exception:
        charset = None
    text, problem = mailtext.decode_bytes(data, charset)
    if problem:
        defects.append(f"{where}: {problem}")
    return text


def _message_bytes(part: EmailMessage) -> bytes:
    """An attached message (or delivery-status report) as bytes, as it came."""
    out = io.BytesIO()
    for item in part.get_payload():
        BytesGenerator(out, mangle_from_=False, policy=_AS_RECEIVED).flatten(item)
    return out.getvalue()


def _attachment(
    part: EmailMessage, name: str, number: int, limit: int, where: str, defects: list[str]
) -> ParsedAttachment:
    content_type = _content_type(part)
    extension = mimetypes.guess_extension(content_type) or ".bin"
    filename = mailtext.safe_filename(name, number, extension)
    if part.is_multipart():
        data = _message_bytes(part)
        size = len(data)
    else:
        payload = str(part.get_payload())
        encoding = _raw_header(part, "content-transfer-encoding").strip().lower()
        size = len(payload)
        if encoding == "base64":  # the decoded size, without decoding
            size = (size - sum(payload.count(c) for c in "\r\n\t =")) * 3 // 4
        data = b""
        if size <= limit or encoding == "quoted-printable":
            data = _payload_bytes(part, where, defects)
            size = len(data)
    if size > limit:
        data = b""
        defects.append(f"{where}: {filename} is {size:,} bytes, over the limit; not kept")
    disposition = _raw_header(part, "content-disposition").split(";")[0].strip().lower()
    inline = disposition == "inline" or (not disposition and bool(_raw_header(part, "content-id")))
    return ParsedAttachment(filename, content_type, size, data, inline)


def _content_type(part: EmailMessage) -> str:
    """The part's type/subtype as the stdlib reads it, or a safe stand-in for garbage."""
    content_type = part.get_content_type()
    valid = re.fullmatch(r"[a-z0-9!#$&^_.+-]{1,100}/[a-z0-9!#$&^_.+-]{1,100}", content_type)
    return content_type if valid else "application/octet-stream"


def _read_body(root: EmailMessage, limit: int, defects: list[str]) -> _Body:
    """Text, HTML and attachments, in order, walking the parts without recursion."""
    body = _Body()
    stack = [root]
    number = 0  # parts in reading order, the message itself not counted
    while stack:
        part = stack.pop()
        content_type = _content_type(part)
        if part is root:
            where = "message"
        else:
            number += 1
            where = f"part {number} ({content_type})"
        try:
            if part.is_multipart() and not content_type.startswith("message/"):
                stack.extend(reversed(part.get_payload()))
                continue
            disposition = _raw_header(part, "content-disposition")
            name = mailtext.mime_param(disposition, "filename") or mailtext.mime_param(
                _raw_header(part, "content-type"), "name"
            )
            readable = content_type in ("text/plain", "text/html") or (
                content_type.startswith("multipart/")  # its boundary was not found
            )
            attached = disposition.strip().lower().startswith("attachment")
            if readable and not part.is_multipart() and not attached and not name:
                text = _part_text(part, where, defects)
                (body.html if content_type == "text/html" else body.plain).append(text)
            else:
                number_of_file = len(body.attachments) + 1
                body.attachments.append(
                    _attachment(part, name, number_of_file, limit, where, defects)
                )
        except Exception as exc:  # one unreadable part must not cost the others
            defects.append(f"{where}: unreadable ({type(exc).__name__})")
        finally:
            defects.extend(
                f"{where}: {mailtext.describe_defect(defect)}" for defect in part.defects
            )
    return body


# ---- the rest of the public interface ----------------------------------------------------


def _auto_kind(first: dict[str, str], content_type: str, report_type: str, address: str) -> str:
    def header(name: str) -> str:
        return first.get(name, "").strip().lower()

    if content_type == "multipart/report" and report_type == "delivery-status":
        return "bounce"
    if address.partition("@")[0] in ("mailer-daemon", "postmaster"):
        return "bounce"
    if header("auto-submitted").split(";")[0].strip() not in ("", "no"):
        return "auto-reply"
    if header("precedence") in ("bulk", "junk", "list"):
        return "bulk"
    if header("list-id") or header("list-unsubscribe"):
        return "list"
    if header("x-auto-response-suppress") or header("x-autoreply") or header("x-autorespond"):
        return "auto-reply"
    if content_type == "multipart/report":  # read receipts and other machine reports
        return "auto-reply"
    if re.fullmatch(r"<\s*>", header("return-path")):
        return "bounce"
    return ""


def auto_kind(msg: EmailMessage, from_address: str) -> str:
    """Why this message must not get a draft, or "" if it is a person's email.

    "bounce" (an RFC 3464 delivery-status report, MAILER-DAEMON or postmaster, an empty
    Return-Path), "auto-reply" (Auto-Submitted other than "no", X-Auto-Response-Suppress,
    other reports), "bulk" (Precedence: bulk/junk/list) or "list" (List-Id).
    """
    first, _ = _first_values(msg)
    return _auto_kind(first, msg.get_content_type(), _report_type(msg), from_address)


def _report_type(msg: EmailMessage) -> str:
    return mailtext.mime_param(_raw_header(msg, "content-type"), "report-type").strip().lower()


def _too_big(data: bytes, max_bytes: int) -> str:
    """Why the body of ``data`` is not read ("" when it is)."""
    if len(data) > max_bytes:
        return f"message is {len(data):,} bytes, over the {max_bytes:,}-byte limit"
    # Never more lines than bytes: most messages need no counting.
    lines = max(data.count(b"\n"), data.count(b"\r")) if len(data) > MAX_LINES else 0
    if lines > MAX_LINES:
        return f"message has {lines:,} lines, over the {MAX_LINES:,}-line limit"
    return ""


def _read_tree(data: bytes, defects: list[str]) -> tuple[EmailMessage, EmailMessage] | None:
    """(the message, the tree its body is read from), or None when only headers can be read.

    The two differ when the message's MIME boundary is wrong or missing and its parts
    had to be found by their delimiter lines.
    """
    try:
        msg, stopped = _parse_tree(data)
        body = msg
        if msg.get_content_maintype() == "multipart" and not msg.is_multipart():
            if recovered := _recover_parts(msg):
                defects.append("wrong or missing MIME boundary; parts found by their delimiters")
                body, stopped = recovered
        if stopped:
            defects.append(stopped)
        return msg, body
    except Exception as exc:  # RecursionError, MemoryError or a stdlib bug: keep the headers
        defects.append(f"MIME structure unreadable ({type(exc).__name__}); only headers read")
        return None


def _without_mbox_line(raw: bytes) -> bytes:
    if raw.startswith(b"From "):
        return raw.split(b"\n", 1)[1] if b"\n" in raw else b""
    return raw


def digest(raw: bytes) -> str:
    """The SHA-256 that identifies a message's bytes (an mbox "From " line left out)."""
    return hashlib.sha256(_without_mbox_line(raw)).hexdigest()


def parse(
    raw: bytes,
    *,
    max_bytes: int = MAX_MESSAGE_BYTES,
    max_attachment_bytes: int = MAX_ATTACHMENT_BYTES,
) -> ParsedMail:
    """Parse ``raw``; decoding problems are recorded as defects, never raised.

    Raises NotMailError only for bytes that do not start like mail. A message over
    ``max_bytes`` gets its headers read and nothing else (``oversize``); attachments
    over ``max_attachment_bytes`` keep their name and size but not their bytes.
    """
    if not looks_like_mail(raw):
        raise NotMailError("no RFC 822 header at the start")
    raw = _without_mbox_line(raw)
    sha256 = digest(raw)
    data = raw.lstrip(b"\r\n")
    defects: list[str] = []
    oversize = _too_big(data, max_bytes)
    if oversize:
        defects.append(f"{oversize}; only the headers were read")
    read = None if oversize else _read_tree(data, defects)
    if read is None:
        msg = _parse_headers_only(data)
        defects.extend(f"message: {mailtext.describe_defect(defect)}" for defect in msg.defects)
        body = _Body()
    else:
        msg, tree = read
        body = _read_body(tree, max_attachment_bytes, defects)
    return _parsed(msg, body, sha256, bool(oversize), defects)


def _parsed(
    msg: EmailMessage, body: _Body, sha256: str, oversize: bool, defects: list[str]
) -> ParsedMail:
    """The ParsedMail for a message and what was read of its body."""
    try:
        hint = msg.get_content_charset()
    except Exception:
        hint = None
    first, counts = _first_values(msg)
    for name in ("from", "subject", "message-id", "date"):
        if counts.get(name, 0) > 1:
            defects.append(f"{counts[name]} {name.title()} headers; the first was used")
    from_name, from_address, problems = mailtext.parse_address(
        first.get("from", "")[:MAX_HEADER_CHARS], hint
    )
    defects.extend(f"From header: {problem}" for problem in problems)
    _, reply_to, _ = mailtext.parse_address(first.get("reply-to", "")[:MAX_HEADER_CHARS], hint)
    message_id = (mailtext.message_ids(_decoded(first, "Message-ID", hint, defects)) or [""])[0]
    in_reply_to = (mailtext.message_ids(_decoded(first, "In-Reply-To", hint, defects)) or [""])[0]
    subject = _decoded(first, "Subject", hint, defects)
    to = _decoded(first, "To", hint, defects)
    cc = _decoded(first, "Cc", hint, defects)
    lists = (first.get(name, "")[:MAX_HEADER_CHARS] for name in ("to", "cc"))
    recipients = mailtext.parse_addresses(lists, hint)
    date, problem = mailtext.parse_date(_decoded(first, "Date", hint, defects))
    if problem:
        defects.append(problem)
    text, model_text, html = _texts(body, defects)
    references, _ = mailtext.decode_8bit(first.get("references", ""))
    headers = _stored_headers(msg, hint, defects)
    kind = _auto_kind(first, msg.get_content_type(), _report_type(msg), from_address)
    if len(defects) > MAX_DEFECTS:
        defects[MAX_DEFECTS:] = [f"{len(defects) - MAX_DEFECTS} more problems not listed"]
    return ParsedMail(
        sha256=sha256,
        message_id=message_id or f"<synthetic-{sha256[:32]}@replyhub.invalid>",
        in_reply_to=in_reply_to,
        references=mailtext.message_ids(references)[-MAX_REFERENCES:],
        subject=subject[:998],
        from_name=from_name[:300],
        from_address=from_address,
        reply_to=reply_to,
        to=to[:2000],
        cc=cc[:2000],
        recipients=recipients,
        date=date,
        text=text,
        html=sanitize_html(html),
        defects=list(dict.fromkeys(mailtext.clean_line(defect) for defect in defects)),
        model_text=model_text,
        html_with_images=sanitize_html(html, allow_remote_images=True),
        attachments=body.attachments,
        oversize=oversize,
        headers=headers,
        auto_kind=kind,
    )


def _texts(body: _Body, defects: list[str]) -> tuple[str, str, str]:
    """(text, model_text, html): text/plain preferred, text derived from HTML otherwise."""
    html = "\n".join(body.html)
    if body.plain:
        text = "\n".join(body.plain)
        model_text = quoting.strip_quoted(text[:MAX_TEXT_CHARS])
    else:
        text = html_to_text(html)
        model_text = quoting.strip_quoted(html_to_text(html, drop_quotes=True)[:MAX_TEXT_CHARS])
    if len(text) > MAX_TEXT_CHARS:
        defects.append(f"text is {len(text):,} characters; only {MAX_TEXT_CHARS:,} kept")
    if len(html) > mailtext.MAX_HTML_CHARS:
        defects.append(f"HTML is {len(html):,} characters; only {mailtext.MAX_HTML_CHARS:,} kept")
    if mailtext.too_nested(html[: mailtext.MAX_HTML_CHARS]):
        defects.append("HTML nested too deeply to show; text only")
    return text[:MAX_TEXT_CHARS], model_text[:MAX_TEXT_CHARS], html

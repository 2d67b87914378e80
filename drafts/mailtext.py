"""Text out of mail: charsets, header values, addresses, HTML and file names.

Everything here turns untrusted bytes or strings into clean text and never raises on bad
input: a problem comes back as a short human-readable string for the message's defects.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import functools
import html as html_lib
import re
import unicodedata
from collections.abc import Iterable
from datetime import UTC, datetime
from email.headerregistry import Address
from email.utils import parsedate_to_datetime
from urllib.parse import unquote_to_bytes

import nh3

MAX_HTML_CHARS = 1_000_000
MAX_HTML_WORK = 5_000_000  # tags x nesting depth, see too_nested

# Labels mail clients use, mapped to the codecs that decode what the senders really meant:
# "gb2312" mail is nearly always GBK (a superset), Big5 and Shift-JIS mail uses vendor
# extensions, "iso-8859-1" means Windows-1252. Keys are labels with only [a-z0-9] kept.
_FAMILIES = {
    "gb2312 gb231280 gb23121980 csgb2312 csiso58gb231280 gbk xgbk cp936 windows936 ms936 "
    "euccn xeuccn chinese gb18030": ("gb18030",),
    "big5 csbig5 xxbig5 cnbig5 big5hkscs cp950 windows950": ("big5hkscs", "cp950"),
    "shiftjis sjis xsjis csshiftjis mskanji windows31j cp932": ("cp932", "shift_jis_2004"),
    "iso2022jp csiso2022jp iso2022jp1 iso2022jp2": ("iso2022_jp", "iso2022_jp_2", "iso2022_jp_ext"),
    "euckr cseuckr ksc5601 ksc56011987 cp949": ("cp949",),
    "iso88591 latin1 l1 cp819 windows1252": ("cp1252", "latin-1"),
    "usascii ascii ansix341968 us": ("ascii", "utf-8", "cp1252"),
    "utf8 unicode11utf8 xunicode20utf8": ("utf-8",),
    "tis620 iso885911 windows874": ("cp874",),
}
_LABELS = {label: codecs for labels, codecs in _FAMILIES.items() for label in labels.split()}
# What 8-bit text without a usable label most likely is, for English and Chinese mail.
_GUESSES = ("utf-8", "gb18030", "cp1252")
# Text codecs that are not charsets: they invent characters or raise whatever the input.
_NOT_CHARSETS = {"unicode-escape", "raw-unicode-escape", "undefined", "idna", "punycode"}

_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_HEADER_CONTROLS = re.compile(r"[\x00-\x1f\x7f]+")
_SURROGATES = re.compile(r"[\ud800-\udfff]")
# _CONTROLS as UTF-8 bytes: deleting them from the encoded text is a faster test than
# searching the text, and only these bytes encode these characters.
_CONTROL_BYTES = bytes([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])


def codecs_for(label: str | None) -> tuple[str, ...]:
    """The codecs to try, in order, for a charset label; () when the label is unknown."""
    label = (label or "").strip().strip("\"'").split("*")[0]
    key = re.sub(r"[^a-z0-9]", "", label.lower())
    if key in _LABELS:
        return _LABELS[key]
    try:
        name = codecs.lookup(label).name
        b"x".decode(name, "replace")  # LookupError for codecs such as base64 or rot13
    except (LookupError, UnicodeError, ValueError):
        return ()
    return () if name in _NOT_CHARSETS else (name,)


def decode_bytes(data: bytes, charset: str | None) -> tuple[str, str]:
    """(text, problem) for ``data`` labelled ``charset``; problem is "" when all went well.

    Undecodable bytes become U+FFFD rather than an error.
    """
    if charset is None and data.isascii():
        return clean_text(data.decode("ascii")), ""
    candidates = codecs_for(charset)
    problem = ""
    if not candidates:
        candidates = _GUESSES if charset is None else ("utf-8",)
        if charset is not None:
            problem = f'unknown charset "{charset[:40]}", read as UTF-8'
    for codec in candidates:
        try:
            text = data.decode(codec)
        except (UnicodeError, LookupError):
            continue
        if charset is None:
            problem = f"8-bit text without a charset, read as {codec}"
        return clean_text(text), problem
    try:
        text = data.decode(candidates[0], errors="replace")
    except (UnicodeError, LookupError):
        text = data.decode("utf-8", errors="replace")
    label = charset[:40] if charset else "no charset"
    return clean_text(text), problem or f"text not valid in {label}; bad bytes replaced"


def decode_8bit(value: str, hint: str | None = None) -> tuple[str, str]:
    """A header value with raw 8-bit bytes (surrogate-escaped by the parser) as text."""
    if not _has_surrogates(value):
        return value, ""
    try:
        data = value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # surrogates that stand for no byte
        return clean_text(value), "invalid characters replaced"
    for codec in (*_GUESSES[:1], *codecs_for(hint), *_GUESSES[1:]):
        try:
            return data.decode(codec), f"raw 8-bit text, read as {codec}"
        except (UnicodeError, LookupError):
            continue
    return data.decode("utf-8", errors="replace"), "raw 8-bit text, bad bytes replaced"


def clean_text(text: str) -> str:
    """Text safe to store: no NUL or other control characters, no lone surrogates, \\n lines."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    try:
        data = text.encode()
    except UnicodeEncodeError:  # lone surrogates
        return _SURROGATES.sub("\ufffd", _CONTROLS.sub("", text))
    if len(data.translate(None, _CONTROL_BYTES)) != len(data):
        text = _CONTROLS.sub("", text)
    return text


def _has_surrogates(text: str) -> bool:
    """Whether ``text`` holds lone surrogates (raw bytes, surrogate-escaped by the parser)."""
    try:
        text.encode()  # UTF-8 encodes every other character; faster than a search
    except UnicodeEncodeError:
        return True
    return False


def clean_line(text: str) -> str:
    """``text`` as one clean line: controls (newlines too) become spaces."""
    if text.isprintable():  # no controls, surrogates or BOM: nothing to clean (most headers)
        return text.strip()
    return _HEADER_CONTROLS.sub(" ", clean_text(text)).strip()


def _unfold(value: str) -> str:
    return re.sub(r"\r?\n(?=[ \t])", "", value) if "\n" in value else value


def decode_base64(text: str) -> tuple[bytes, bool]:
    """The bytes of base64 ``text``, however broken, and whether it was broken.

    Characters outside the alphabet are skipped, missing padding is added and a
    dangling last character dropped, where the stdlib would give up and return the
    base64 text itself.
    """
    text = re.sub(r"[\s]+", "", text)
    if len(text) % 4 == 0 and re.fullmatch(r"[A-Za-z0-9+/]*={0,2}", text):
        try:
            return base64.b64decode(text), False
        except (binascii.Error, ValueError):
            pass
    clean = re.sub(r"[^A-Za-z0-9+/]", "", text)
    if len(clean) % 4 == 1:
        clean = clean[:-1]
    try:
        return base64.b64decode(clean + "=" * (-len(clean) % 4)), True
    except (binascii.Error, ValueError):
        return b"", True


def _word_bytes(encoding: str, text: str) -> tuple[bytes, bool]:
    """The bytes of one encoded word, and whether it was broken."""
    if encoding in "bB":
        return decode_base64(text)
    data = text.replace("_", " ").encode("utf-8", "surrogatepass")
    broken = bool(re.search(rb"=(?![0-9A-Fa-f]{2})", data))
    return re.sub(rb"=([0-9A-Fa-f]{2})", lambda m: bytes([int(m[1], 16)]), data), broken


def decode_words(value: str) -> tuple[str, list[str]]:
    """``value`` with its RFC 2047 encoded words decoded; problems found along the way.

    Adjacent encoded words in one charset are decoded together, because senders split
    multibyte characters across them.
    """
    if "=?" not in value:  # most header values: nothing to decode
        return value, []
    problems: list[str] = []
    out: list[str] = []
    pending: list[bytes] = []
    pending_charset = ""

    def flush() -> None:
        if pending:
            text, problem = decode_bytes(b"".join(pending), pending_charset)
            out.append(text)
            if problem:
                problems.append(problem)
            pending.clear()

    position = 0
    for match in _ENCODED_WORD.finditer(value):
        between = value[position : match.start()]
        charset = match[1].split("*")[0]
        if between and (between.strip() or not pending):
            flush()
            out.append(between)
        elif pending and charset.lower() != pending_charset.lower():
            flush()
        data, broken = _word_bytes(match[2], match[3])
        if broken:
            problems.append("broken encoded word")
        pending.append(data)
        pending_charset = charset
        position = match.end()
    flush()
    out.append(value[position:])
    return "".join(out), problems


def decode_header(value: str, hint: str | None = None) -> tuple[str, list[str]]:
    """A header value as one clean line of text, and the problems met decoding it."""
    text, problems = _decode_header(value, hint)
    return text, list(problems)


@functools.lru_cache(maxsize=64)  # parse() decodes the headers it reads and then all of them
def _decode_header(value: str, hint: str | None) -> tuple[str, tuple[str, ...]]:
    value, problem = decode_8bit(_unfold(value), hint)
    text, problems = decode_words(value)
    return clean_line(text), (problem, *problems) if problem else tuple(problems)


@functools.lru_cache(maxsize=16)
def _param_pattern(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(?:^|;)\s*{re.escape(name)}(?:\*(?P<index>\d{{1,3}}))?(?P<star>\*)?\s*=\s*"
        r'(?:"(?P<quoted>(?:[^"\\]|\\.)*)"?|(?P<token>[^;\s]*))',
        re.IGNORECASE,
    )


def mime_param(value: str, name: str) -> str:
    """Parameter ``name`` of a MIME header value ("" when absent), fully decoded.

    Handles RFC 2231 (``name*=utf-8''%E6%97%A5``, ``name*0*=``/``name*1*=`` pieces),
    RFC 2047 encoded words inside quotes (common, though not allowed) and raw 8-bit text.
    One pass over the value, so long hostile values cost linear time.
    """
    if not value:  # no Content-Disposition, most often
        return ""
    value, _ = decode_8bit(_unfold(value))
    simple: str | None = None
    extended: str | None = None
    pieces: dict[int, tuple[bool, str]] = {}
    for match in _param_pattern(name).finditer(value):
        text = match["token"] or ""
        if match["quoted"] is not None:
            text = re.sub(r"\\(.)", r"\1", match["quoted"])
        if match["index"] is not None:
            pieces.setdefault(int(match["index"]), (bool(match["star"]), text))
        elif match["star"]:
            extended = text if extended is None else extended
        else:
            simple = text if simple is None else simple
    if extended is not None:
        pieces = {0: (True, extended)}
    if not pieces:
        return clean_line(decode_words(simple or "")[0])
    charset: str | None = None
    data = bytearray()
    for number in sorted(pieces):
        is_encoded, text = pieces[number]
        if is_encoded and number == min(pieces) and text.count("'") >= 2:
            charset, _, text = text.split("'", 2)
        data += unquote_to_bytes(text) if is_encoded else text.encode("utf-8", "surrogatepass")
    text, _ = decode_bytes(bytes(data), charset or None)
    return clean_line(decode_words(text)[0])


def parse_date(value: str) -> tuple[datetime | None, str]:
    """(the Date header value as a UTC datetime, problem); None without a time zone."""
    if not value:
        return None, ""
    try:
        date = parsedate_to_datetime(value[:200])
        return (date.astimezone(UTC) if date.tzinfo else None), ""
    except Exception:  # the stdlib raises several kinds on odd dates
        return None, f"unreadable Date: {value[:80]}"


def message_ids(value: str) -> list[str]:
    """The <message-ids> in a Message-ID, In-Reply-To or References value, in order."""
    ids = re.findall(r"<[!-;=?-~]{1,996}>", value)
    if not ids:  # a bare id@host, as some mailers write it
        ids = [f"<{bare}>" for bare in re.findall(r"[!-;=?-~]{1,500}@[!-;=?-~]{1,494}", value)[:1]]
    return ids


# The stdlib parser's MIME defects, as a reviewer should read them.
_DEFECT_TEXT = {
    "NoBoundaryInMultipartDefect": "multipart without a boundary",
    "StartBoundaryNotFoundDefect": "MIME boundary not found",
    "CloseBoundaryNotFoundDefect": "closing MIME boundary missing",
    "FirstHeaderLineIsContinuationDefect": "first header line is a continuation",
    "MisplacedEnvelopeHeaderDefect": "stray From_ line among the headers",
    "MissingHeaderBodySeparatorDefect": "no blank line after the headers",
    "MultipartInvariantViolationDefect": "multipart type without parts",
    "InvalidMultipartContentTransferEncodingDefect": "multipart with a transfer encoding",
    "UndecodableBytesDefect": "undecodable bytes",
    "InvalidBase64PaddingDefect": "broken base64 (padding)",
    "InvalidBase64CharactersDefect": "broken base64 (invalid characters)",
    "InvalidBase64LengthDefect": "broken base64 (truncated)",
}


def describe_defect(defect: Exception) -> str:
    """A defect the stdlib parser recorded, as a short human-readable string."""
    name = type(defect).__name__
    return _DEFECT_TEXT.get(name) or str(defect)[:200] or name


# ---- addresses -------------------------------------------------------------------------

_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_LABEL = r"[^\W_](?:[\w-]{0,61}[^\W_])?"
_ADDR_SPEC = re.compile(rf"{_LOCAL}@{_LABEL}(?:\.{_LABEL})*")


def _tokens(value: str) -> list[tuple[str, str]]:
    """RFC 5322 tokens: quoted, comment, angle, punct (, : ;) and word. Linear time."""
    tokens: list[tuple[str, str]] = []
    i, n = 0, len(value)
    while i < n:
        char = value[i]
        if char.isspace():
            i += 1
        elif char == '"':
            i, text = _delimited(value, i + 1, '"')
            tokens.append(("quoted", text))
        elif char == "(":
            depth, start = 1, i + 1
            i += 1
            while i < n and depth:
                if value[i] == "\\":
                    i += 1
                elif value[i] in "()":
                    depth += 1 if value[i] == "(" else -1
                i += 1
            tokens.append(("comment", value[start : i - 1 if not depth else i]))
        elif char == "<":
            end = value.find(">", i + 1)
            end = n if end < 0 else end
            tokens.append(("angle", value[i + 1 : end]))
            i = end + 1
        elif char in ",:;":
            tokens.append(("punct", char))
            i += 1
        else:
            start = i
            while i < n and not value[i].isspace() and value[i] not in '"(<,:;':
                # An encoded word is one atom, whatever specials its text holds.
                word = _ENCODED_WORD.match(value, i) if value.startswith("=?", i) else None
                i = word.end() if word else i + 1
            tokens.append(("word", value[start:i]))
    return tokens


def _delimited(value: str, i: int, close: str) -> tuple[int, str]:
    """Text up to an unescaped ``close`` (backslash escapes undone) and the index after it."""
    out: list[str] = []
    while i < len(value) and value[i] != close:
        if value[i] == "\\" and i + 1 < len(value):
            i += 1
        out.append(value[i])
        i += 1
    return i + 1, "".join(out)


def _mailboxes(tokens: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """Tokens split into mailboxes at commas; a group's name (up to its colon) dropped."""
    first_angle = next((i for i, t in enumerate(tokens) if t[0] == "angle"), len(tokens))
    colon = next((i for i, t in enumerate(tokens) if t == ("punct", ":")), None)
    if colon is not None and colon < first_angle:
        tokens = tokens[colon + 1 :]
    boxes: list[list[tuple[str, str]]] = [[]]
    for token in tokens:
        if token[0] == "punct":
            boxes.append([])
        else:
            boxes[-1].append(token)
    return [box for box in boxes if any(kind != "comment" for kind, _ in box)]


def _mailbox(box: list[tuple[str, str]]) -> tuple[str, str]:
    """(display name, address-spec or "") of one mailbox's tokens.

    The address is the <angle-addr> when there is one, whatever the words before it
    say; without one the mailbox must be a single bare word. A quoted string is never
    an address, so a display name can never become the address.
    """
    angle = next((i for i, (kind, _) in enumerate(box) if kind == "angle"), None)
    comments = [text for kind, text in box if kind == "comment"]
    if angle is not None:
        address = box[angle][1].strip()
        if address.startswith("@") and ":" in address:  # obsolete source route
            address = address.rsplit(":", 1)[1]
        name = " ".join(text for kind, text in box[:angle] if kind in ("word", "quoted"))
    else:
        words = [(kind, text) for kind, text in box if kind != "comment"]
        address = words[0][1] if len(words) == 1 and words[0][0] == "word" else ""
        name = "" if address else " ".join(text for kind, text in words if kind == "quoted")
    name = name or " ".join(comments)
    if not (len(address) <= 320 and _ADDR_SPEC.fullmatch(address)):
        address = ""
    return name, address.lower()


def parse_address(value: str, hint: str | None = None) -> tuple[str, str, list[str]]:
    """(display name, address-spec, problems) of the first mailbox in an address header.

    The header is split into tokens before any encoded word is decoded, so a decoded
    display name cannot add structure; an address that is not a plain valid
    address-spec comes back as "".
    """
    value, problem = decode_8bit(_unfold(value), hint)
    problems = [problem] if problem else []
    boxes = _mailboxes(_tokens(value))
    name, address = next(
        (found for found in map(_mailbox, boxes) if found[1]),
        _mailbox(boxes[0]) if boxes else ("", ""),
    )
    name, name_problems = decode_words(name)
    name = re.sub(r"\s+", " ", clean_line(name))
    if boxes and not address:
        problems.append("no valid address")
    return name, address, problems + name_problems


def parse_addresses(values: Iterable[str], hint: str | None = None) -> list[str]:
    """The valid address-specs of address-list headers (To, Cc), in order and each once
    (see ``unique_addresses``); mailboxes without a valid address are left out."""
    found = []
    for value in values:
        value, _ = decode_8bit(_unfold(value), hint)
        found.extend(_mailbox(box)[1] for box in _mailboxes(_tokens(value)))
    return unique_addresses(address for address in found if address)


def unique_addresses(addresses: Iterable[str]) -> list[str]:
    """``addresses`` each once, compared without case, as first written, in order."""
    kept: dict[str, str] = {}
    for address in addresses:
        kept.setdefault(address.lower(), address)
    return list(kept.values())


def format_address(name: str, address: str) -> str:
    """A header-safe "Name <address>"."""
    username, _, domain = address.partition("@")
    return str(Address(display_name=name, username=username, domain=domain))


# ---- HTML -------------------------------------------------------------------------------

_DROPPED_WITH_CONTENT = {"script", "style", "head", "title", "template", "noscript", "xmp"}
_BLOCK_END = re.compile(r"(?i)<br\s*/?>|</(p|div|li|tr|h\d|blockquote|table|pre)\s*>")
_CELL_END = re.compile(r"(?i)</t[dh]\s*>")
_BLOCKQUOTE = re.compile(r"<blockquote", re.IGNORECASE)


_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]{0,20})")
_NOT_NESTING = {
    *("area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"),
    *("track", "wbr", "p", "li", "dd", "dt", "td", "th", "tr", "option", "tbody", "thead"),
}


@functools.lru_cache(maxsize=8)  # parse() asks about the same HTML several times
def too_nested(html: str) -> bool:
    """Whether HTML nests so deeply that sanitizing it would take seconds.

    The HTML parser behind nh3 rescans its stack of open elements for many tags, so
    its time grows with (tags x nesting depth); real mail stays far below the bound.
    """
    tags = html.count("<")
    if tags * (tags + 1) // 2 <= MAX_HTML_WORK:  # even if every tag nested in the last
        return False
    depth = work = 0
    for match in _TAG.finditer(html):
        name = match[2].lower()
        if name in _NOT_NESTING:
            continue
        if match[1]:
            depth = max(depth - 1, 0)
        else:
            depth += 1
            work += depth
            if work > MAX_HTML_WORK:
                return True
    return False


def html_to_text(html: str, *, drop_quotes: bool = False) -> str:
    """Readable text from HTML: tags dropped, block ends as line breaks.

    With ``drop_quotes`` the <blockquote> elements (quoted history in most HTML mail
    clients) are dropped with their content.
    """
    # Without a <blockquote> tag nothing is dropped: the same text, and parse() asks for
    # both, so the second comes from the cache.
    return _html_to_text(html, drop_quotes and bool(_BLOCKQUOTE.search(html)))


@functools.lru_cache(maxsize=8)
def _html_to_text(html: str, drop_quotes: bool) -> str:
    html = _CELL_END.sub(" ", _BLOCK_END.sub("\n", html[:MAX_HTML_CHARS]))
    if too_nested(html):  # only the words then, without the HTML parser
        text = re.sub(r"<[^<>]*>?", "", html)
    else:
        text = _TEXT_ONLY[drop_quotes].clean(html)
    text = html_lib.unescape(text)
    text = clean_text(text).replace("\xa0", " ")
    if " \n" in text or "\t\n" in text:  # a cheap test first: the pattern has no prefix
        text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n\n\n+", "\n\n", text).strip()  # "\n{3,}", but found faster


def sanitize_html(html: str, allow_remote_images: bool = False) -> str:
    """HTML safe to show staff: no scripts, styles, handlers, forms, or `data:` URLs.

    Nothing in the result loads anything: images are dropped unless
    ``allow_remote_images``, and then only http(s) ``src`` survive (no data:, no cid:).
    Links get rel="noopener noreferrer nofollow"; relative URLs are dropped because
    they would point into ReplyHub itself.
    """
    if not html or too_nested(html[:MAX_HTML_CHARS]):
        return ""
    return _SANITIZERS[allow_remote_images].clean(html[:MAX_HTML_CHARS])


def _only_web_images(tag: str, attribute: str, value: str) -> str | None:
    if tag == "img" and attribute == "src" and not re.match(r"(?i)https?://", value):
        return None
    return value


# Built once: setting a cleaner up takes several times longer than cleaning a mail.
_TEXT_ONLY = {
    drop_quotes: nh3.Cleaner(
        tags=set(),
        attributes={},
        clean_content_tags=_DROPPED_WITH_CONTENT | ({"blockquote"} if drop_quotes else set()),
    )
    for drop_quotes in (False, True)
}
_SANITIZERS = {
    allow_remote_images: nh3.Cleaner(
        tags=set(nh3.ALLOWED_TAGS) if allow_remote_images else nh3.ALLOWED_TAGS - {"img"},
        clean_content_tags={"script", "style", "title", "template", "noscript", "xmp"},
        url_schemes={"http", "https", "mailto"},
        url_relative="deny",
        attribute_filter=_only_web_images,
        link_rel="noopener noreferrer nofollow",
    )
    for allow_remote_images in (False, True)
}


def safe_filename(name: str, number: int, extension: str = ".bin") -> str:
    """A file name safe to save anywhere: no folders, controls, leading dots or odd characters.

    Falls back to "attachment-<number><extension>" when nothing usable is left.
    """
    name = re.split(r"[/\\]", name.replace("\x00", ""))[-1]
    name = "".join(
        " " if unicodedata.category(char) in ("Zs", "Zl", "Zp") else char
        for char in name
        if unicodedata.category(char) not in ("Cc", "Cf", "Cs", "Co", "Cn")
    )
    name = re.sub(r'[<>:"|?*]', "_", name)
    name = re.sub(r"\s+", " ", name).strip(" .")
    if re.fullmatch(r"(?i)(con|prn|aux|nul|com\d|lpt\d)(\..*)?", name):
        name = f"_{name}"
    if len(name) > 150:
        stem, dot, ext = name.rpartition(".")
        ext = ext if dot and 0 < len(ext) <= 16 else ""
        name = (stem if ext else name)[: 150 - len(ext) - 1].rstrip(" .") + (
            f".{ext}" if ext else ""
        )
    return name or f"attachment-{number}{extension}"

"""Quoted history and signatures: what the model should not read as the customer's words.

Mail clients quote earlier messages in many ways ("> ", "On ... wrote:", Outlook's
"From: ... Sent: ...", "在 ... 写道：", Foxmail's rule above the signature); the text
shown to reviewers keeps all of it, the text given to the model does not.
"""

from __future__ import annotations

import itertools
import re

MAX_MARKER_CHARS = 300  # longest line taken for a quote or signature marker

_QUOTED = re.compile(r"^\s*>")
_SIGNATURE = re.compile(
    r"^(--\s?|Sent from my .{1,40}|Sent from (Mail|Outlook|Yahoo Mail|Gmail)\b.{0,40}"
    r"|Get Outlook for \w+|(发自|来自)我的.{1,30})$",
    re.IGNORECASE,
)
_SEPARATOR = re.compile(
    r"^[-_=\s]{2,}\s*(Original Message|Original|原始邮件|邮件原件|原邮件)\s*[-_=\s]{2,}$",
    re.IGNORECASE,
)
_ATTRIBUTION = re.compile(r"^(On\s.{1,300}\swrote:|.{1,300}写道\s*[:：])$", re.IGNORECASE)
_HEADER_FROM = re.compile(r"^\*?(From|发件人|寄件者)\s*\*?\s*[:：]", re.IGNORECASE)
_HEADER_SENT = re.compile(
    r"^\*?(Sent|Date|发送时间|日期|时间|寄件日期)\s*\*?\s*[:：]", re.IGNORECASE
)
_FORWARDED = re.compile(
    r"(Forwarded message|Begin forwarded message|转发的邮件|转发邮件|Forwarded Message)",
    re.IGNORECASE,
)
_RULE = re.compile(r"^[-_=*\s]{5,}$")


def _attribution_length(lines: list[str], i: int) -> int:
    """How many lines (0, 1 or 2) an "On ... wrote:" style attribution at ``i`` takes."""
    line = lines[i].strip()
    if len(line) > MAX_MARKER_CHARS:
        return 0
    if _ATTRIBUTION.match(line):
        return 1
    if i + 1 < len(lines) and (line.startswith("On ") or line.startswith("在")):
        if _ATTRIBUTION.match(f"{line} {lines[i + 1].strip()[:MAX_MARKER_CHARS]}"):
            return 2
    return 0


# A quoted line or marker starts (after blanks) like _MAY_START or ends like _MAY_END;
# most lines do neither, and finding those that do costs little next to the patterns.
_MAY_START = re.compile(
    r"\s*(?:[->_=*在发寄来]|on\s|from|sent from |get outlook for )", re.IGNORECASE
)
# Two patterns, as each then starts with a literal that the regex engine finds fast.
_MAY_END = [re.compile(rf"{colon}[^\S\n]*$", re.MULTILINE) for colon in ":："]


def _may_matter(text: str, lines: list[str]) -> list[int]:
    """Which of ``lines`` (``text`` split) may be quoted or a marker, in order."""
    found = set(itertools.compress(range(len(lines)), map(_MAY_START.match, lines)))
    for pattern in _MAY_END:
        line = position = 0
        for match in pattern.finditer(text):
            line += text.count("\n", position, match.start())
            position = match.start()
            found.add(line)
    return sorted(found)


def _starts_history(lines: list[str], i: int) -> bool:
    """Whether a signature, separator or forwarded-header block starts at line ``i``."""
    line = lines[i].strip()
    if len(line) > MAX_MARKER_CHARS:  # markers are short; long lines would cost regex time
        return False
    if _SIGNATURE.match(lines[i]) or _SEPARATOR.match(line):
        return True
    if _HEADER_FROM.match(line):
        following = (lines[j].strip() for j in range(i + 1, min(i + 5, len(lines))))
        if any(_HEADER_SENT.match(next_line) for next_line in following):
            before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            return not _FORWARDED.search(before)
    return False


# Foxmail and QQ Mail put exactly this above the signature instead of "-- ".
_SIGNATURE_RULE = re.compile(r"^\s*-{18}\s*$")


def _drop_closing_signature(lines: list[str]) -> None:
    """Drop trailing blank and rule lines, and a Foxmail-style signature block at the end."""
    while lines and (not lines[-1].strip() or _RULE.match(lines[-1])):
        lines.pop()
    tail = range(len(lines) - 1, max(len(lines) - 7, -1), -1)
    rule = next((i for i in tail if _SIGNATURE_RULE.match(lines[i])), None)
    if rule is not None and all(len(line) <= 60 for line in lines[rule + 1 :]):
        del lines[rule:]
        while lines and not lines[-1].strip():
            lines.pop()


def strip_quoted(text: str) -> str:
    """``text`` without quoted history and signatures: what the customer wrote this time.

    Quoted (">") lines go wherever they are, so answers written between quotes stay;
    everything from a signature delimiter, a mobile signature, an "-----Original
    Message-----" line, an Outlook/Foxmail "From:/Sent:" (发件人/发送时间) block or a
    final "On ... wrote:" (在 ... 写道：) attribution on is dropped. Falls back to the
    whole text when nothing would be left.
    """
    lines = text.split("\n")
    kept: list[str] = []
    i = 0  # lines before i are decided
    for j in _may_matter(text, lines):
        if j < i:  # the second line of an attribution
            continue
        kept += lines[i:j]  # neither quoted nor a marker: the customer's words
        i = j + 1
        if _QUOTED.match(lines[j]):
            continue
        if _starts_history(lines, j):
            break
        if span := _attribution_length(lines, j):
            after = _next_text(lines, j + span)
            if after == len(lines) or _starts_history(lines, after):
                break
            i = j + span  # an interleaved reply: drop the attribution, keep the answers
            continue
        kept.append(lines[j])
    else:
        kept += lines[i:]
    _drop_closing_signature(kept)
    result = re.sub(r"\n\n\n+", "\n\n", "\n".join(kept)).strip()
    return result or text.strip()


def _next_text(lines: list[str], i: int) -> int:
    """The first line at or after ``i`` that is neither blank nor quoted (len(lines): none).

    Only attributions ask, and each scan stops at the next such line, which no earlier
    scan has passed: the scans take linear time together.
    """
    while i < len(lines) and (not lines[i].strip() or _QUOTED.match(lines[i])):
        i += 1
    return i

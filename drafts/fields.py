"""The extracted fields as a reviewer reads them: labelled, and marked in the email's text.

A field's value is checked against the email when it is extracted (inference.extract); here
each verified value is found again in the text the page shows, so the reviewer sees where
it came from: the value in the fields table links to its highlighted place in the email.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _

from inference import injection
from inference.extract import locate

FIELD_LABELS = {
    "customer_name": _("Customer name"),
    "product": _("Product"),
    "key_dates": _("Key dates"),
    "problem": _("Problem"),
    "order_numbers": _("Order numbers"),
    "phone_numbers": _("Phone numbers"),
    "email_addresses": _("Email addresses"),
}
SOURCE_LABELS = {
    "header": _("the sender's name"),
    "pattern": _("found by an exact pattern"),
    "model": _("suggested by the model"),
}

# The engine's flags are stable codes; a reviewer reads them as sentences in their language.
FLAG_LABELS = {
    "empty_reply": _("The reply is empty."),
    "placeholder_text": _("The reply still has placeholder text such as “[Your Name]”."),
    "language_mismatch": _("The email is in Chinese; the reply is not."),
    "too_long": _("The reply is too long:"),
    "unverified_field": _("Suggested by the model but not found in the email:"),
    injection.INSTRUCTIONS: _("Possible prompt injection: instructions to the assistant"),
    injection.DELIMITERS: _("Possible prompt injection: fake delimiters or chat roles"),
    injection.OTHERS_DATA: _("Possible prompt injection: asks for other customers' data"),
    injection.RECIPIENTS: _("Possible prompt injection: asks to change recipients"),
    injection.CONTROL_CHARS: _("Possible prompt injection: zero-width or bidi characters"),
    injection.HIDDEN_TEXT: _("Hidden text in the email"),
}

_LONGEST_FIRST = sorted(FLAG_LABELS, key=len, reverse=True)  # "too_long: …" before "too"


def describe_flag(flag: str) -> str:
    """A flag as a sentence: its code's label, then the engine's detail (quotes, numbers)."""
    for code in _LONGEST_FIRST:
        if flag == code or flag.startswith((f"{code}:", f"{code} ", f"{code}(")):
            detail = flag[len(code) :].lstrip(":").strip()
            if code == "unverified_field":
                detail = str(FIELD_LABELS.get(detail, detail))
            elif code == "language_mismatch":
                detail = ""
            elif code == "too_long" and (limit := re.fullmatch(r"over (\d+) (\w+)", detail)):
                detail = (
                    _("over %(n)s characters")
                    if limit[2] == "characters"
                    else _("over %(n)s words")
                ) % {"n": limit[1]}
            return f"{FLAG_LABELS[code]} {detail}".strip()
    return flag


@dataclass(frozen=True)
class Segment:
    """A piece of the email's text; ``anchor`` and ``field`` are set where a value was found."""

    text: str
    anchor: str = ""
    field: str = ""


@dataclass(frozen=True)
class FieldValue:
    value: str
    source: str
    verified: bool
    anchor: str  # the id of its mark in the email's text, "" when it is not shown there
    normalized: str = ""


@dataclass(frozen=True)
class FieldRow:
    name: str
    label: str
    values: list[FieldValue]


def annotate(text: str, fields: dict[str, list[dict]]) -> tuple[list[FieldRow], list[Segment]]:
    """The fields in display order, and ``text`` cut into segments marking their values.

    Each verified value is marked at its first place in the text; a value overlapping one
    already marked keeps its row but gets no mark.
    """
    marks: list[tuple[int, int, str, str]] = []
    rows = []
    for name, values in fields.items():
        shown = []
        for index, entry in enumerate(values or []):
            value = str(entry.get("value", ""))
            anchor = ""
            span = locate(value, text) if entry.get("verified") else None
            if span and all(span[1] <= start or span[0] >= end for start, end, *_ in marks):
                anchor = f"source-{name}-{index}"
                marks.append((span[0], span[1], anchor, name))
            shown.append(
                FieldValue(
                    value=value,
                    source=str(SOURCE_LABELS.get(entry.get("source", ""), entry.get("source", ""))),
                    verified=bool(entry.get("verified")),
                    anchor=anchor,
                    normalized=str(entry.get("normalized") or ""),
                )
            )
        if shown:
            rows.append(FieldRow(name, str(FIELD_LABELS.get(name, name)), shown))
    segments = []
    position = 0
    for start, end, anchor, name in sorted(marks):
        if start > position:
            segments.append(Segment(text[position:start]))
        segments.append(Segment(text[start:end], anchor, name))
        position = end
    if position < len(text):
        segments.append(Segment(text[position:]))
    return rows, segments

"""Fields of an email: deterministic extractors, the model's JSON, and provenance.

Regular expressions are exact where they apply (dates, order numbers, phones,
addresses), so they are preferred; the model contributes what they cannot find
(product, problem). Every value records whether it occurs in the email text.
"""

from __future__ import annotations

import json
import re
from typing import Any

CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")

DATE_PATTERNS = [
    r"\d{4}\s*年\s*\d{1,2}\s*月\s*\d{1,2}\s*[日号]",
    r"\d{1,2}\s*月\s*\d{1,2}\s*[日号]",
    r"\d{4}-\d{1,2}-\d{1,2}",
    r"\d{4}/\d{1,2}/\d{1,2}",
    r"\b\d{1,2}/\d{1,2}\b",
    r"\b(?:(?:next|this)\s+)?(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day,?\s+"
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.?\s+\d{1,2}(?:st|nd|rd|th)?\b",
    r"\b(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.?\s+\d{1,2}(?:st|nd|rd|th)?"
    r"(?:,?\s+\d{4})?\b",
    r"\b\d{1,2}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
    r"[a-z]*\.?(?:\s+\d{4})?\b",
    r"(?:下|本|这)?(?:周|星期|礼拜)[一二三四五六日天]",
    r"\b(?:next|this)\s+(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|week)\b",
    r"(?:明天|后天|今天|下周|月底|月初)",
]
DATE_RE = re.compile("|".join(f"(?:{p})" for p in DATE_PATTERNS), re.IGNORECASE)
ORDER_RE = re.compile(
    r"(?:订单号|订单|工单号|工单|合同号|发票号|order|ticket|case|invoice|contract)"
    r"\s*(?:no\.?|number|编号)?\s*[#:：]?\s*([A-Z]{0,4}[-\d]*\d[-A-Z\d]{3,})",
    re.IGNORECASE,
)
PHONE_RE = re.compile(r"(?<!\d)(?:\+?86[- ]?)?1[3-9]\d[- ]?\d{4}[- ]?\d{4}(?!\d)|\+\d[\d -]{7,}\d")
EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")

FIELD_NAMES = ("customer_name", "product", "key_dates", "problem")


def detect_language(text: str) -> str:
    """ "zh" when a noticeable share of the letters are Chinese, else "en"."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return "en"
    chinese = sum(1 for c in letters if CJK.match(c))
    return "zh" if chinese / len(letters) > 0.2 else "en"


def _unique(values: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for value in values:
        value = value.strip()
        if value and value not in seen:
            seen[value] = None
    return list(seen)


def deterministic_fields(text: str) -> dict[str, list[str]]:
    """Values found by exact patterns: dates, order/ticket numbers, phones, addresses."""
    return {
        "key_dates": _unique([m.group(0) for m in DATE_RE.finditer(text)]),
        "order_numbers": _unique([m.group(1) for m in ORDER_RE.finditer(text)]),
        "phone_numbers": _unique([m.group(0) for m in PHONE_RE.finditer(text)]),
        "email_addresses": _unique(EMAIL_RE.findall(text)),
    }


def parse_model_json(output: str) -> dict[str, Any]:
    """The first JSON object in the model's output, or {} when there is none that parses."""
    start = output.find("{")
    while start != -1:
        depth = 0
        for end in range(start, len(output)):
            if output[end] == "{":
                depth += 1
            elif output[end] == "}":
                depth -= 1
                if depth == 0:
                    try:
                        value = json.loads(output[start : end + 1])
                    except json.JSONDecodeError:
                        break
                    return value if isinstance(value, dict) else {}
        start = output.find("{", start + 1)
    return {}


def locate(value: str, text: str) -> list[int] | None:
    """[start, end] of ``value`` in ``text`` (case-insensitive), or None if absent."""
    if not value:
        return None
    index = text.lower().find(value.lower())
    return [index, index + len(value)] if index >= 0 else None


def _field(value: str, source: str, text: str) -> dict[str, Any]:
    span = locate(value, text)
    return {"value": value, "source": source, "span": span, "verified": span is not None}


def merge_fields(
    text: str, sender_name: str, model_output: dict[str, Any]
) -> dict[str, list[dict[str, Any]]]:
    """All fields with provenance: {name: [{value, source, span, verified}, ...]}.

    Deterministic values come first and win; a model value is kept (marked unverified
    when the email does not contain it) so the reviewer can judge it.
    """
    found = deterministic_fields(text)
    fields: dict[str, list[dict[str, Any]]] = {
        name: [_field(v, "pattern", text) for v in values] for name, values in found.items()
    }
    names = []
    if sender_name and "@" not in sender_name:
        names.append(_field(sender_name, "header", text))
        names[0]["verified"] = True  # it is the sender's own display name
    model_name = str(model_output.get("customer_name") or "").strip()
    if model_name and not names:
        names.append(_field(model_name, "model", text))
    fields["customer_name"] = names
    for name in ("product", "problem"):
        value = str(model_output.get(name) or "").strip()
        fields[name] = [_field(value[:300], "model", text)] if value else []
    model_dates = model_output.get("key_dates") or []
    if isinstance(model_dates, str):
        model_dates = [model_dates]
    known = {f["value"] for f in fields["key_dates"]}
    for value in model_dates:
        value = str(value).strip()
        if value and value not in known and locate(value, text):
            fields["key_dates"].append(_field(value, "model", text))
    return fields


def first_value(fields: dict[str, list[dict[str, Any]]], name: str) -> str:
    """The first value of a field, or ""."""
    values = fields.get(name) or []
    return values[0]["value"] if values else ""

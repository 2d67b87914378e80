"""Fields of an email: deterministic extractors, the model's JSON, and provenance.

Regular expressions are exact where they apply (dates, order numbers, phones,
addresses), so they are preferred; the model contributes what they cannot find
(product, problem). Every value records whether it occurs in the email text.
"""

from __future__ import annotations

import datetime as dt
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
    r"(?:订单号|订单|工单号|工单|合同号|合同|发票号|发票|单号"
    r"|orders?|tickets?|case|invoices?|contracts?)"
    r"\s*(?:no\.?|number|编号)?\s*[#:：]?\s*([A-Z]{0,4}[-\d]*\d[-A-Z\d]{3,})",
    re.IGNORECASE,
)
PHONE_RE = re.compile(
    r"(?<!\d)(?:\+?86[- ]?)?1[3-9]\d[- ]?\d{4}[- ]?\d{4}(?!\d)"  # Chinese mobiles
    r"|\+\d[\d -]{7,}\d"  # international
    r"|(?<![\d-])[48]00[- ]?\d{3}[- ]?\d{4}(?!\d)"  # 400/800 hotlines
    r"|(?<![\d-])0\d{2,4}[- ]\d{6,8}(?!\d)"  # landlines with an area code: 010-12345678
)
EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")

FIELD_NAMES = ("customer_name", "product", "key_dates", "problem")

# The analysis JSON the model is asked for: name -> expected type. "intent" is tolerated
# because the prompt asks for it first; any other key is dropped.
FIELD_SCHEMA: dict[str, type] = {
    "customer_name": str,
    "product": str,
    "key_dates": list,
    "problem": str,
    "order_numbers": list,
    "phone_numbers": list,
    "email_addresses": list,
}
LIST_FIELDS = tuple(name for name, kind in FIELD_SCHEMA.items() if kind is list)


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


class AnalysisError(ValueError):
    """The model's analysis is not a JSON object that can be repaired into the schema."""


def _as_text(value: Any) -> str | None:
    if value is None:
        return ""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value).strip()
    return None


def validate_analysis(output: str) -> tuple[dict[str, Any], list[str]]:
    """The analysis JSON in ``output``, checked against FIELD_SCHEMA and repaired.

    Repairs (each listed in the returned notes): a string where a list belongs becomes a
    one-item list, a list where a string belongs is joined, numbers become strings, null
    becomes empty, unknown keys are dropped. Raises AnalysisError when there is no JSON
    object at all or a value cannot be read as text; the caller then asks once more.
    """
    data = parse_model_json(output)
    if not data:
        raise AnalysisError("the analysis is not a JSON object")
    clean: dict[str, Any] = {}
    notes = [f"dropped unknown key {key!r}" for key in data if key not in FIELD_SCHEMA]
    notes = [n for n in notes if n != "dropped unknown key 'intent'"]
    for name, kind in FIELD_SCHEMA.items():
        value = data.get(name)
        if kind is list:
            if value is None:
                value = []
            elif isinstance(value, str | int | float) and not isinstance(value, bool):
                notes.append(f"{name}: a single value, made a list")
                value = [value]
            items = [_as_text(v) for v in value] if isinstance(value, list) else None
            if items is None or None in items:
                raise AnalysisError(f"{name} must be a list of strings, not {value!r:.60}")
            clean[name] = [v for v in items if v]
        else:
            if isinstance(value, list):
                notes.append(f"{name}: a list, joined")
                value = ", ".join(str(v) for v in value if v)
            text = _as_text(value)
            if text is None:
                raise AnalysisError(f"{name} must be a string, not {value!r:.60}")
            clean[name] = text
    return clean, notes


WEEKDAYS_ZH = "一二三四五六日"
RELATIVE_ZH = re.compile(r"(下|本|这)?(?:周|星期|礼拜)([一二三四五六日天])")
MONTH_DAY_ZH = re.compile(r"^(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]$")


def normalize_date(expression: str, today: dt.date) -> str | None:
    """The ISO date an expression means, counted from ``today``; None when unclear.

    dateparser reads absolute forms in both languages and English relative ones; Chinese
    weekdays (下周二) and month-day without a year (12月3日) are resolved here.
    """
    match = RELATIVE_ZH.fullmatch(expression.strip())
    if match:
        weekday = WEEKDAYS_ZH.index(match.group(2).replace("天", "日"))
        monday = today - dt.timedelta(days=today.weekday())
        if match.group(1) == "下":
            monday += dt.timedelta(days=7)
        day = monday + dt.timedelta(days=weekday)
        if not match.group(1) and day < today:
            day += dt.timedelta(days=7)
        return day.isoformat()
    match = MONTH_DAY_ZH.match(expression.strip())
    if match:
        try:
            day = dt.date(today.year, int(match.group(1)), int(match.group(2)))
        except ValueError:
            return None
        return (day if day >= today else day.replace(year=today.year + 1)).isoformat()
    import dateparser  # imported here: it loads its language data on first use

    parsed = dateparser.parse(
        expression,
        languages=["zh", "en"],
        settings={
            "RELATIVE_BASE": dt.datetime.combine(today, dt.time(9)),
            "PREFER_DATES_FROM": "future",
        },
    )
    return parsed.date().isoformat() if parsed else None


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
    text: str,
    sender_name: str,
    model_output: dict[str, Any],
    today: dt.date | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """All fields with provenance: {name: [{value, source, span, verified}, ...]}.

    Deterministic values come first and win; a model value is kept (marked unverified
    when the email does not contain it) so the reviewer can judge it, except for dates,
    numbers and addresses, where a value the email does not contain is dropped: the
    patterns are exact there. Dates also carry ``normalized``, the ISO date they mean.
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
    for name in LIST_FIELDS:
        known = {f["value"].casefold() for f in fields[name]}
        for value in model_output.get(name) or []:
            value = str(value).strip()
            if value and value.casefold() not in known and locate(value, text):
                known.add(value.casefold())
                fields[name].append(_field(value, "model", text))
    today = today or dt.date.today()
    for entry in fields["key_dates"]:
        entry["normalized"] = normalize_date(entry["value"], today)
    return fields


def first_value(fields: dict[str, list[dict[str, Any]]], name: str) -> str:
    """The first value of a field, or ""."""
    values = fields.get(name) or []
    return values[0]["value"] if values else ""

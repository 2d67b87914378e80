"""The reply's format rules: fix what is trivial, flag the rest for the reviewer."""

from __future__ import annotations

import re

from inference.extract import detect_language

MARKDOWN_LINE = re.compile(r"^\s*(?:#{1,6}\s+|[-*+•]\s+|\d+[.)、]\s+|>\s?)", re.MULTILINE)
MARKDOWN_INLINE = re.compile(r"(\*\*|__|`{1,3}|~~)")
MAX_CHARS_ZH = 200
MAX_WORDS_EN = 120


def greeting(language: str, name: str) -> str:
    """The opening line: "尊敬的X：" or "Dear X,"."""
    if language == "zh":
        return f"尊敬的{name or '客户'}："
    return f"Dear {name or 'Customer'},"


def strip_markdown(text: str) -> str:
    """Remove list bullets, headings, quotes and emphasis markers."""
    text = MARKDOWN_LINE.sub("", text)
    return MARKDOWN_INLINE.sub("", text)


GREETING_LINE = re.compile(
    r"^\s*(?:(?:dear|hello|hi|greetings)\b[^\n,!:]{0,40}[,!:]\s*"
    r"|(?:尊敬的|亲爱的)[^：:，,\n]{0,20}[：:，,]\s*"
    r"|(?:您好|你好)[！!，,。.]?\s*)+",
    re.IGNORECASE,
)
PLACEHOLDER = re.compile(r"\[[^\]\n]{2,40}\]|【[^】\n]{2,20}】")


def placeholders(text: str) -> list[str]:
    """Template placeholders left in ``text`` ("[Your Name]", "【公司名称】"), each once, in
    the order they first appear."""
    return list(dict.fromkeys(PLACEHOLDER.findall(text)))


def _drop_model_greeting(text: str) -> str:
    """Remove the greeting the model wrote; ours, with the analysed name, replaces it."""
    return GREETING_LINE.sub("", text + "\n", count=1).strip()


def _cut_model_signoff(text: str) -> str:
    """Drop a closing the model invented ("Best regards, [Your Name]") before ours."""
    pattern = (
        r"\n\s*(best regards|kind regards|regards|sincerely|yours sincerely|best wishes|"
        r"thanks and regards|此致|敬礼|祝好|顺祝商祺)[\s\S]*$"
    )
    return re.sub(pattern, "", text, flags=re.IGNORECASE).rstrip()


def length_of(text: str, language: str) -> int:
    """Characters (Chinese) or words (English) in the reply body."""
    return len(re.sub(r"\s", "", text)) if language == "zh" else len(text.split())


def enforce(text: str, language: str, name: str, signoff: str) -> tuple[str, list[str]]:
    """The reply with trivial fixes applied, and flags for the rules it still breaks.

    Fixed silently: markdown symbols; the greeting and sign-off, which are always ours.
    Flagged: an empty body, a body over the length limit, template placeholders such as
    "[Your Name]", and a reply not in the email's language.
    """
    flags = []
    content = _drop_model_greeting(_cut_model_signoff(strip_markdown(text).strip()))
    if not content:
        flags.append("empty_reply")
    if PLACEHOLDER.search(content):
        flags.append("placeholder_text")
    if content and language == "zh" and detect_language(content) != "zh":
        flags.append("language_mismatch: the email is Chinese, the reply is not")
    limit = MAX_CHARS_ZH if language == "zh" else MAX_WORDS_EN
    if length_of(content, language) > limit:
        unit = "characters" if language == "zh" else "words"
        flags.append(f"too_long: over {limit} {unit}")
    opening = greeting(language, name)
    body = f"{opening}\n\n{content}" if content else opening
    return f"{body}\n\n{signoff}", flags

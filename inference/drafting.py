"""From one customer email to a reviewed-ready draft: analyse, then write the reply.

1. Intent: the six labels are scored by the model's likelihood (constrained choice),
   never parsed out of free text, so the answer is always one of them.
2. Fields: the model answers the analysis prompt with JSON; exact patterns complement
   it, and every value records whether the email contains it.
3. Reply: written with the analysis in the prompt, then held to the format rules.
"""

from __future__ import annotations

import json
import math
import string
from dataclasses import dataclass, field
from typing import Any

from inference import extract, replycheck
from inference.registry import Backend
from inference.types import ChatMessage, ChoiceRequest, GenerationRequest, SamplingParams

# Stored value -> (English label the model scores, Chinese label shown to staff).
INTENTS: dict[str, tuple[str, str]] = {
    "inquiry": ("inquiry", "咨询"),
    "complaint": ("complaint", "投诉"),
    "partnership": ("partnership", "合作意向"),
    "technical_support": ("technical support", "技术支持"),
    "demo_booking": ("demo booking", "预约演示"),
    "other": ("other", "其他"),
}

TEMPLATE_VARIABLES = {
    "company_name": "the company's name",
    "signoff": "the closing line, e.g. the team's name",
    "sender_name": "the sender's display name (may be empty)",
    "customer_name": "the customer's name as analysed",
    "subject": "the email's subject",
    "email": "the email, quoted and delimited as data",
    "language": "zh or en",
    "reply_language": "Chinese (简体中文) or English",
    "greeting": "the opening line, e.g. 尊敬的张先生： or Dear Ms Smith,",
    "intent": "the intent label, e.g. technical support (技术支持)",
    "fields": "the analysed fields as JSON",
    "length_limit": "200 characters or about 120 words",
}

EMAIL_OPEN, EMAIL_CLOSE = "<<<EMAIL", "EMAIL>>>"


@dataclass(frozen=True)
class EmailInput:
    """The parts of a customer email the model sees."""

    subject: str
    sender_name: str
    sender_address: str
    body: str


@dataclass(frozen=True)
class PromptSet:
    """A prompt template's three texts, with {variables} from TEMPLATE_VARIABLES."""

    system: str
    analysis: str
    reply: str


@dataclass(frozen=True)
class DraftSettings:
    """Company profile and generation limits for one draft."""

    company_name: str
    signoff: str
    sampling: SamplingParams = field(default_factory=SamplingParams)
    analysis_max_new_tokens: int = 96


@dataclass(frozen=True)
class DraftOutcome:
    """Everything the pipeline stores on a draft."""

    intent: str
    confidence: float
    intent_scores: dict[str, float]
    fields: dict[str, list[dict[str, Any]]]
    language: str
    reply: str
    raw_reply: str
    flags: list[str]
    prompt_tokens: int
    completion_tokens: int
    timings: dict[str, float]
    sampling: dict[str, Any]
    finish_reason: str


class TemplateError(ValueError):
    """A prompt template uses an unknown variable or cannot be rendered."""


def render_template(text: str, values: dict[str, str]) -> str:
    """Fill ``{variable}`` placeholders; unknown names raise TemplateError."""
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:
        raise TemplateError(f"Template cannot be parsed: {exc}") from exc
    unknown = names - set(TEMPLATE_VARIABLES)
    if unknown:
        raise TemplateError(f"Unknown template variable(s): {', '.join(sorted(unknown))}")
    return text.format_map(values)


def quote_email(email: EmailInput) -> str:
    """The email as delimited data; delimiters inside it are defused."""

    def defuse(value: str) -> str:
        return value.replace(EMAIL_OPEN, "<< <EMAIL").replace(EMAIL_CLOSE, "EMAIL> >>")

    sender = f"{email.sender_name} <{email.sender_address}>".strip()
    return (
        f"{EMAIL_OPEN}\nFrom: {defuse(sender)}\nSubject: {defuse(email.subject)}\n\n"
        f"{defuse(email.body.strip())}\n{EMAIL_CLOSE}"
    )


def _softmax(scores: list[float]) -> list[float]:
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


def draft_reply(
    backend: Backend, email: EmailInput, prompts: PromptSet, settings: DraftSettings
) -> DraftOutcome:
    """Analyse ``email`` and write the reply draft with ``backend``."""
    text = f"{email.subject}\n{email.body}"
    language = extract.detect_language(text)
    values = {
        "company_name": settings.company_name,
        "signoff": settings.signoff,
        "sender_name": email.sender_name,
        "customer_name": email.sender_name,
        "subject": email.subject,
        "email": quote_email(email),
        "language": language,
        "reply_language": "Chinese (简体中文)" if language == "zh" else "English",
        "greeting": "",
        "intent": "",
        "fields": "{}",
        "length_limit": "200 characters" if language == "zh" else "about 120 words",
    }
    system = ChatMessage("system", render_template(prompts.system, values))
    analysis = (system, ChatMessage("user", render_template(prompts.analysis, values)))

    keys = list(INTENTS)
    choice = backend.score_choices([ChoiceRequest(analysis, tuple(INTENTS[k][0] for k in keys))])[0]
    probabilities = _softmax(list(choice.logprobs))
    best = max(range(len(keys)), key=probabilities.__getitem__)
    intent = keys[best]

    analysed = backend.generate(
        [
            GenerationRequest(
                analysis,
                SamplingParams(max_new_tokens=settings.analysis_max_new_tokens),
            )
        ]
    )[0]
    fields = extract.merge_fields(text, email.sender_name, extract.parse_model_json(analysed.text))
    name = extract.first_value(fields, "customer_name")
    summary = {k: [v["value"] for v in vals] for k, vals in fields.items() if vals}
    values.update(
        customer_name=name,
        greeting=replycheck.greeting(language, name),
        intent=f"{INTENTS[intent][0]} ({INTENTS[intent][1]})",
        fields=json.dumps(summary, ensure_ascii=False),
    )
    reply_request = GenerationRequest(
        (system, ChatMessage("user", render_template(prompts.reply, values))),
        settings.sampling,
    )
    written = backend.generate([reply_request])[0]
    reply, flags = replycheck.enforce(written.text, language, name, settings.signoff)
    flags += [
        f"unverified_field: {k}"
        for k, vals in fields.items()
        if any(not v["verified"] for v in vals)
    ]
    return DraftOutcome(
        intent=intent,
        confidence=round(probabilities[best], 4),
        intent_scores={k: round(p, 4) for k, p in zip(keys, probabilities, strict=True)},
        fields=fields,
        language=language,
        reply=reply,
        raw_reply=written.text,
        flags=flags,
        prompt_tokens=choice.prompt_tokens + analysed.prompt_tokens + written.prompt_tokens,
        completion_tokens=analysed.completion_tokens + written.completion_tokens,
        timings={
            "intent_s": round(choice.seconds, 3),
            "analysis_s": round(analysed.seconds, 3),
            "reply_s": round(written.seconds, 3),
        },
        sampling=settings.sampling.as_dict(),
        finish_reason=written.finish_reason,
    )

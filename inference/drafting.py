"""From customer emails to review-ready drafts: analyse, then write the replies.

Every step runs for a whole batch of emails at once, so a GPU drafts many together:

1. Intent: the six labels are scored by the model's likelihood (constrained choice),
   never parsed out of free text, so the answer is always one of them.
2. Fields: the model answers the analysis prompt with JSON, checked against a schema and
   repaired, or asked for once more; exact patterns complement it, and every value records
   where in the email it was found.
3. Reply: sampled by the first matching rule (sober for money, freer for open questions),
   written with the analysis in the prompt, then held to the format rules.
4. Safety: the email is quoted data; attempts to instruct the model are flagged.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from inference import extract, replycheck
from inference.injection import detect_injection
from inference.registry import Backend
from inference.sampling import DEFAULT_RULES, DEFAULT_TEMPERATURE, SamplingRule, choose_sampling
from inference.types import (
    ChatMessage,
    ChoiceRequest,
    GenerationRequest,
    GenerationResult,
    SamplingParams,
)

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
    "thread": "the earlier messages of the conversation, quoted as data (may say there are none)",
    "mailbox": "the support mailbox answering, e.g. Acme Support <support@acme.example>",
}

EMAIL_OPEN, EMAIL_CLOSE = "<<<EMAIL", "EMAIL>>>"


@dataclass(frozen=True)
class EmailInput:
    """The parts of a customer email the model sees."""

    subject: str
    sender_name: str
    sender_address: str
    body: str
    html: str = ""  # the sanitized HTML part, checked for hidden text
    received: dt.date | None = None  # relative dates ("next Tuesday") count from here
    # Earlier messages of the conversation, oldest first: (who wrote it, its text).
    thread: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Example:
    """An earlier email and the reply a reviewer approved for it, shown to the model."""

    key: str  # how the caller finds it again (ReplyHub: the draft's id), kept on the outcome
    email: str
    reply: str


@dataclass(frozen=True)
class Revision:
    """A reviewer's request to change a reply: the reply as it stands (their edits
    included) and what should change ("shorter", "mention the refund policy")."""

    reply: str
    instruction: str


DRAFT_OPEN, DRAFT_CLOSE = "<<<DRAFT", "DRAFT>>>"
# The draft quoted in the reply prompt's turn, not given as the model's own earlier answer:
# asked "shorter" that way, the bundled model's rewrites were no shorter than a plain
# regeneration (bench/rewrite.py, docs/benchmarks.md).
REVISE = (
    f"Our draft of the reply:\n{DRAFT_OPEN}\n{{draft}}\n{DRAFT_CLOSE}\n\n"
    "Rewrite the draft with this change: {instruction}. Write only the reply."
)
ASKED = "Our reviewer asks for this: {instruction}"


def revision_request(revision: Revision) -> str:
    """What the reply prompt's turn ends with when a reviewer asked for a change."""
    instruction = revision.instruction.strip()
    if not revision.reply.strip():  # nothing written yet (the model failed): a wish
        return ASKED.format(instruction=instruction)
    draft = revision.reply.strip().replace(DRAFT_CLOSE, "DRAFT> >>")
    return REVISE.format(draft=draft, instruction=instruction)


# Given an email and its intent, the examples to show the model before it writes the reply.
ExampleFinder = Callable[[EmailInput, str], Sequence[Example]]
EXAMPLE_INTRO = "An earlier customer email, and the reply our team approved for it:"


@dataclass(frozen=True)
class PromptSet:
    """A prompt template's three texts, with {variables} from TEMPLATE_VARIABLES.

    ``reply_by_intent`` replaces the reply prompt for the intents it names (a complaint is
    answered differently from a demo booking); the system and analysis prompts run before
    the intent is known, so they are shared.
    """

    system: str
    analysis: str
    reply: str
    reply_by_intent: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DraftSettings:
    """Company profile and generation limits for a batch of drafts.

    ``temperature`` overrides the sampling rules (a reviewer asking for a regeneration
    with another temperature); None lets the rules decide.
    """

    company_name: str
    signoff: str
    max_new_tokens: int = 200
    mailbox: str = ""
    contact_line: str = ""  # printed under the sign-off, e.g. a hotline and a web address
    analysis_max_new_tokens: int = 96
    repetition_penalty: float = 1.1
    temperature: float | None = None
    seed: int | None = None


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
    analysis_notes: list[str]
    reply_prompt_intent: str = ""  # whose reply prompt wrote it: an intent, or "" (default)
    examples: tuple[str, ...] = ()  # keys of the examples shown with the reply prompt


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


def _defuse(value: str) -> str:
    """Delimiters inside quoted text, made harmless."""
    return value.replace(EMAIL_OPEN, "<< <EMAIL").replace(EMAIL_CLOSE, "EMAIL> >>")


def quote_email(email: EmailInput) -> str:
    """The email as delimited data; delimiters inside it are defused."""
    sender = f"{email.sender_name} <{email.sender_address}>".strip()
    return (
        f"{EMAIL_OPEN}\nFrom: {_defuse(sender)}\nSubject: {_defuse(email.subject)}\n\n"
        f"{_defuse(email.body.strip())}\n{EMAIL_CLOSE}"
    )


def quote_thread(email: EmailInput) -> str:
    """The conversation so far as delimited data, or a line saying there is none."""
    if not email.thread:
        return "(no earlier messages)"
    return "\n".join(
        f"{EMAIL_OPEN}\nFrom: {_defuse(who)}\n\n{_defuse(text.strip())}\n{EMAIL_CLOSE}"
        for who, text in email.thread
    )


def _example_turns(example: Example) -> tuple[ChatMessage, ChatMessage]:
    """An example as a past exchange: the email quoted as data, the approved reply."""
    quoted = f"{EXAMPLE_INTRO}\n{EMAIL_OPEN}\n{_defuse(example.email.strip())}\n{EMAIL_CLOSE}"
    return ChatMessage("user", quoted), ChatMessage("assistant", example.reply)


def _softmax(scores: list[float]) -> list[float]:
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


RETRY_ANALYSIS = (
    "That was not valid. Answer with only the JSON object, exactly these keys: "
    '{"customer_name": "", "product": "", "key_dates": [], "problem": ""}'
)


def _analyse(
    backend: Backend, prompts: list[tuple[ChatMessage, ...]], settings: DraftSettings
) -> tuple[list[dict[str, Any]], list[list[str]], list[GenerationResult]]:
    """The fields JSON for each prompt; an answer that cannot be repaired is asked once more."""
    greedy = SamplingParams(max_new_tokens=settings.analysis_max_new_tokens)
    first = backend.generate([GenerationRequest(p, greedy) for p in prompts])
    outputs: list[dict[str, Any]] = [{} for _ in prompts]
    notes: list[list[str]] = [[] for _ in prompts]
    again = []
    for i, result in enumerate(first):
        try:
            outputs[i], notes[i] = extract.validate_analysis(result.text)
        except extract.AnalysisError as exc:
            notes[i] = [f"asked again: {exc}"]
            again.append(i)
    retried = backend.generate(
        [
            GenerationRequest(
                (
                    *prompts[i],
                    ChatMessage("assistant", first[i].text),
                    ChatMessage("user", RETRY_ANALYSIS),
                ),
                greedy,
            )
            for i in again
        ]
    )
    for i, result in zip(again, retried, strict=True):
        try:
            outputs[i], repairs = extract.validate_analysis(result.text)
            notes[i] += repairs
        except extract.AnalysisError as exc:
            notes[i].append(f"gave up: {exc}; only exact patterns were used")
    totals = list(first)
    for i, result in zip(again, retried, strict=True):
        totals[i] = replace(
            result,
            prompt_tokens=first[i].prompt_tokens + result.prompt_tokens,
            completion_tokens=first[i].completion_tokens + result.completion_tokens,
            seconds=first[i].seconds + result.seconds,
        )
    return outputs, notes, totals


def draft_replies(
    backend: Backend,
    emails: list[EmailInput],
    prompts: PromptSet,
    settings: DraftSettings,
    rules: tuple[SamplingRule, ...] = DEFAULT_RULES,
    examples: ExampleFinder | None = None,
    revisions: Sequence[Revision | None] | None = None,
) -> list[DraftOutcome]:
    """Analyse ``emails`` and write their reply drafts with ``backend``, as one batch.

    Each step is one batched call to the backend, so the outcomes come back together, in
    the order of ``emails``. ``revisions``, parallel to ``emails``: where one is given, the
    reply prompt ends with the reply as it stands, quoted, and the reviewer's request, and
    the model writes the reply again.
    """
    if not emails:
        return []
    keys = list(INTENTS)
    texts = [f"{e.subject}\n{e.body}" for e in emails]
    values = [
        _values(e, settings, extract.detect_language(t)) for e, t in zip(emails, texts, strict=True)
    ]
    systems = [ChatMessage("system", render_template(prompts.system, v)) for v in values]
    analysis = [
        (system, ChatMessage("user", render_template(prompts.analysis, v)))
        for system, v in zip(systems, values, strict=True)
    ]

    choices = backend.score_choices(
        [ChoiceRequest(a, tuple(INTENTS[k][0] for k in keys)) for a in analysis]
    )
    analysed, notes, analysis_runs = _analyse(backend, analysis, settings)

    reply_requests, rule_names, intents, fields_list, shown_keys = [], [], [], [], []
    revisions = revisions or [None] * len(emails)
    for email, text, v, system, choice, output, revision in zip(
        emails, texts, values, systems, choices, analysed, revisions, strict=True
    ):
        probabilities = _softmax(list(choice.logprobs))
        best = max(range(len(keys)), key=probabilities.__getitem__)
        intent = keys[best]
        fields = extract.merge_fields(text, email.sender_name, output, email.received)
        name = extract.first_value(fields, "customer_name")
        summary = {k: [f["value"] for f in found] for k, found in fields.items() if found}
        v.update(
            customer_name=name,
            greeting=replycheck.greeting(v["language"], name),
            intent=f"{INTENTS[intent][0]} ({INTENTS[intent][1]})",
            fields=json.dumps(summary, ensure_ascii=False),
        )
        base = SamplingParams(
            temperature=DEFAULT_TEMPERATURE,
            top_p=0.9,
            max_new_tokens=settings.max_new_tokens,
            repetition_penalty=settings.repetition_penalty,
            seed=settings.seed,
        )
        sampling, rule = choose_sampling(rules, intent, text, base)
        if settings.temperature is not None:
            sampling = SamplingParams(**{**sampling.as_dict(), "temperature": settings.temperature})
            rule = "chosen by the reviewer"
        user = ChatMessage(
            "user", render_template(prompts.reply_by_intent.get(intent, prompts.reply), v)
        )
        shown = tuple(examples(email, intent)) if examples else ()
        turns = [turn for example in shown for turn in _example_turns(example)]
        if revision:
            user = ChatMessage("user", f"{user.content}\n\n{revision_request(revision)}")
        reply_requests.append(GenerationRequest((system, *turns, user), sampling))
        shown_keys.append(tuple(example.key for example in shown))
        rule_names.append(rule)
        intents.append((intent, probabilities, best))
        fields_list.append(fields)

    written = backend.generate(reply_requests)

    outcomes = []
    for i, email in enumerate(emails):
        intent, probabilities, best = intents[i]
        fields, v = fields_list[i], values[i]
        reply, flags = replycheck.enforce(
            written[i].text,
            v["language"],
            v["customer_name"],
            "\n".join(line for line in (settings.signoff, settings.contact_line) if line),
        )
        flags = detect_injection(texts[i], email.html) + flags
        flags += [
            f"unverified_field: {k}"
            for k, found in fields.items()
            if any(not f["verified"] for f in found)
        ]
        outcomes.append(
            DraftOutcome(
                intent=intent,
                confidence=round(probabilities[best], 4),
                intent_scores={k: round(p, 4) for k, p in zip(keys, probabilities, strict=True)},
                fields=fields,
                language=v["language"],
                reply=reply,
                raw_reply=written[i].text,
                flags=flags,
                prompt_tokens=choices[i].prompt_tokens
                + analysis_runs[i].prompt_tokens
                + written[i].prompt_tokens,
                completion_tokens=analysis_runs[i].completion_tokens + written[i].completion_tokens,
                timings={
                    "intent_s": round(choices[i].seconds, 3),
                    "analysis_s": round(analysis_runs[i].seconds, 3),
                    "reply_s": round(written[i].seconds, 3),
                    "batch_size": len(emails),
                },
                sampling={**reply_requests[i].sampling.as_dict(), "rule": rule_names[i]},
                finish_reason=written[i].finish_reason,
                analysis_notes=notes[i],
                reply_prompt_intent=intent if intent in prompts.reply_by_intent else "",
                examples=shown_keys[i],
            )
        )
    return outcomes


def draft_reply(
    backend: Backend,
    email: EmailInput,
    prompts: PromptSet,
    settings: DraftSettings,
    rules: tuple[SamplingRule, ...] = DEFAULT_RULES,
) -> DraftOutcome:
    """The draft for one email: a batch of one."""
    return draft_replies(backend, [email], prompts, settings, rules)[0]


def _values(email: EmailInput, settings: DraftSettings, language: str) -> dict[str, str]:
    """Template variables known before the analysis; the rest are filled after it."""
    return {
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
        "thread": quote_thread(email),
        "mailbox": settings.mailbox,
    }

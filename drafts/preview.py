"""Trying a prompt template on one email without creating a draft (the admin's Preview).

The email is a stored one or pasted text; the configured model runs the whole pipeline
(intent, fields, reply, checks) exactly as the worker would, in the web process, and the
result is shown, not stored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from drafts import tasks
from drafts.models import Mailbox, Message, PromptTemplate
from inference.drafting import DraftOutcome, EmailInput, PromptSet, draft_replies


@dataclass(frozen=True)
class Preview:
    outcome: DraftOutcome
    seconds: float
    prompts_from: str  # which templates supplied the prompts, for the reader


def prompts_for(template: PromptTemplate) -> tuple[PromptSet, str]:
    """The prompts a preview of ``template`` runs: an intent template's reply prompt rides
    on the default template's system and analysis prompts, as in real drafting."""
    if not template.intent:
        prompts = PromptSet(template.system_prompt, template.analysis_prompt, template.reply_prompt)
        return prompts, str(template)
    default = PromptTemplate.active()
    prompts = PromptSet(
        default.system_prompt,
        default.analysis_prompt,
        default.reply_prompt,
        {template.intent: template.reply_prompt},
    )
    return prompts, f"{default} + {template} ({template.get_intent_display()})"


def pasted_email(subject: str, sender: str, body: str) -> EmailInput:
    """An email typed into the preview form: "Name <address>" or an address as sender."""
    name, _, address = sender.rpartition("<")
    if not address:
        name, address = "", sender
    return EmailInput(subject, name.strip().strip('"'), address.strip(" >"), body)


def run(template: PromptTemplate, email: EmailInput | Message, mailbox: Mailbox) -> Preview:
    """Draft ``email`` with ``template`` and the configured model; nothing is stored."""
    prompts, prompts_from = prompts_for(template)
    if isinstance(email, Message):
        email = tasks.email_input(email)
    backend = tasks.configured_backend()
    started = time.perf_counter()
    [outcome] = draft_replies(
        backend,
        [email],
        prompts,
        tasks.draft_settings(mailbox),
    )
    return Preview(outcome, time.perf_counter() - started, prompts_from)

"""Background tasks, run by django-q2 workers. They take ids, not objects.

Tasks are enqueued on commit, so a worker never looks for a row that is not there yet.
Every task first claims its draft with a conditional UPDATE: django-q2 delivers at
least once, and a second delivery finds nothing to claim.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django_q.tasks import async_task

from drafts.models import Draft, PromptTemplate
from inference.drafting import DraftSettings, EmailInput, PromptSet, draft_reply
from inference.registry import load_backend
from inference.types import SamplingParams

log = logging.getLogger(__name__)


def _enqueue(func: str, draft_id: int) -> None:
    """Queue ``func(draft_id)`` so no worker can run it before the draft is committed.

    With the ORM broker the task row joins the current transaction: the message, its
    draft and its task are stored together or not at all. Redis is outside the
    transaction, so there the task is pushed once the transaction has committed.
    """
    if "orm" in settings.Q_CLUSTER:
        async_task(func, draft_id)
    else:
        transaction.on_commit(lambda: async_task(func, draft_id))


def enqueue_generation(draft: Draft) -> None:
    """Queue the model run for ``draft``."""
    _enqueue("drafts.tasks.generate_draft", draft.pk)


def enqueue_send(draft: Draft) -> None:
    """Queue sending of an approved ``draft``."""
    _enqueue("drafts.sending.send_draft", draft.pk)


def generate_draft(draft_id: int) -> str:
    """Run the model for one draft and store intent, fields and reply on it."""
    draft = Draft.objects.select_related("message__mailbox").filter(pk=draft_id).first()
    if draft is None or not draft.claim_for_generation():
        return "skipped: not queued"
    try:
        template = PromptTemplate.active()
        backend = load_backend(
            settings.REPLYHUB_ENGINE, settings.REPLYHUB_MODEL, settings.REPLYHUB_DEVICE
        )
        message, mailbox = draft.message, draft.message.mailbox
        outcome = draft_reply(
            backend,
            EmailInput(
                subject=message.subject,
                sender_name=message.from_name,
                sender_address=message.from_address,
                body=message.text_for_model,
            ),
            PromptSet(template.system_prompt, template.analysis_prompt, template.reply_prompt),
            DraftSettings(
                company_name=mailbox.effective_company_name,
                signoff=mailbox.effective_signoff,
                sampling=SamplingParams(
                    temperature=0.7,
                    top_p=0.9,
                    max_new_tokens=settings.REPLYHUB_MAX_NEW_TOKENS,
                    repetition_penalty=1.1,
                ),
                analysis_max_new_tokens=settings.REPLYHUB_ANALYSIS_MAX_NEW_TOKENS,
            ),
        )
    except Exception as exc:
        log.exception("Draft %s: generation failed", draft_id)
        Draft.objects.filter(pk=draft_id, status=Draft.GENERATING).update(
            status=Draft.FAILED,
            error=f"{type(exc).__name__}: {exc}"[:4000],
            version=F("version") + 1,
        )
        return "failed"
    Draft.objects.filter(pk=draft_id, status=Draft.GENERATING).update(
        status=Draft.READY,
        intent=outcome.intent,
        confidence=outcome.confidence,
        intent_scores=outcome.intent_scores,
        fields=outcome.fields,
        language=outcome.language,
        flags=outcome.flags,
        generated_text=outcome.reply,
        reply_text=outcome.reply,
        template=template,
        generation={
            "engine": settings.REPLYHUB_ENGINE,
            "model": getattr(backend, "model_name", settings.REPLYHUB_MODEL),
            "raw_reply": outcome.raw_reply,
            "finish_reason": outcome.finish_reason,
            **outcome.sampling,
        },
        prompt_tokens=outcome.prompt_tokens,
        completion_tokens=outcome.completion_tokens,
        timings=outcome.timings,
        ready_at=timezone.now(),
        version=F("version") + 1,
    )
    log.info("Draft %s ready: %s (%.2f)", draft_id, outcome.intent, outcome.confidence)
    return "ready"

"""Background tasks, run by django-q2 workers. They take ids, not objects.

Tasks are enqueued on commit, so a worker never looks for a row that is not there yet.
Every task first claims its draft with a conditional UPDATE: django-q2 delivers at
least once, and a second delivery finds nothing to claim.
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task

from drafts import assignment, examples
from drafts.api.callbacks import notify_finished as notify_api_callbacks
from drafts.models import Draft, Mailbox, Message, Outbox, PromptTemplate, SamplingRule
from drafts.notify import Notification
from inference.drafting import (
    DraftOutcome,
    DraftSettings,
    EmailInput,
    PromptSet,
    Revision,
    draft_replies,
)
from inference.registry import Backend, load_backend

log = logging.getLogger(__name__)


def _enqueue(func: str, draft_id: int, queue: str | None = None) -> None:
    """Queue ``func(draft_id)`` so no worker can run it before the draft is committed.

    With the ORM broker the task row joins the current transaction: the message, its
    draft and its task are stored together or not at all. Redis is outside the
    transaction, so there the task is pushed once the transaction has committed.
    ``queue``: another django-q2 cluster's queue than the model workers'.
    """
    if "orm" in settings.Q_CLUSTER:
        async_task(func, draft_id, cluster=queue)
    else:
        transaction.on_commit(lambda: async_task(func, draft_id, cluster=queue))


def enqueue_io(func: str, pk: int) -> None:
    """Queue ``func(pk)`` for the I/O workers (settings.REPLYHUB_IO_QUEUE), which never wait
    for the model; without that queue, for the model workers."""
    _enqueue(func, pk, settings.REPLYHUB_IO_QUEUE)


def enqueue_generation(draft: Draft) -> None:
    """Queue the model run for ``draft``."""
    _enqueue("drafts.tasks.generate_draft", draft.pk)


def enqueue_delivery(outbox: Outbox) -> None:
    """Queue sending of an approved reply's outbox record: now, or (in its undo window) as a
    one-off schedule for its ``next_attempt_at`` on the same queue, which the worker's
    scheduler turns into a task at most 30 s after that time. The schedule row joins the
    current transaction."""
    if outbox.next_attempt_at <= timezone.now():
        enqueue_io("drafts.sending.send_outbox", outbox.pk)
        return
    Schedule.objects.create(
        name=_delivery_schedule(outbox),
        func="drafts.sending.send_outbox",
        args=repr(outbox.pk),
        schedule_type=Schedule.ONCE,
        repeats=-1,  # a ONCE schedule that has run is deleted
        next_run=outbox.next_attempt_at,
        cluster=settings.REPLYHUB_IO_QUEUE,
    )


def unschedule_delivery(outbox: Outbox) -> None:
    """Drop the schedule of a reply whose approval was undone (its task would find nothing
    to send anyway: the outbox record is no longer due)."""
    Schedule.objects.filter(name=_delivery_schedule(outbox)).delete()


def _delivery_schedule(outbox: Outbox) -> str:
    return f"Send reply (outbox {outbox.pk})"


def enqueue_notification(notification: Notification) -> None:
    """Queue delivery of a chat notification (drafts.notify)."""
    enqueue_io("drafts.notify.deliver_notification", notification.pk)


THREAD_MESSAGES = 3  # earlier messages of a conversation the model reads, newest kept
THREAD_CHARS = 1500  # of each


def email_input(message: Message) -> EmailInput:
    """What the model reads of ``message``: its text and up to THREAD_MESSAGES before it."""
    earlier = []
    if message.thread_id:
        before = message.thread.messages.exclude(pk=message.pk)
        if message.date:  # an email without a Date header: all the thread is earlier
            before = before.filter(date__lte=message.date)
        for m in reversed(before.order_by("-date", "-id")[:THREAD_MESSAGES]):
            who = "us" if m.direction == m.OUTBOUND else (m.from_name or m.from_address)
            earlier.append((who, m.text_for_model[:THREAD_CHARS]))
    return EmailInput(
        subject=message.subject,
        sender_name=message.from_name,
        sender_address=message.from_address,
        body=message.text_for_model,
        html=message.html,
        received=timezone.localtime(message.received_at).date() if message.received_at else None,
        thread=tuple(earlier),
    )


def batch_size() -> int:
    """How many drafts one task drafts together: REPLYHUB_BATCH_SIZE, or by the device.

    One at a time on a CPU (a reviewer waits for the first draft, not the last), 32 on a
    GPU or a remote inference server, where a batch costs little more than one draft.
    """
    if settings.REPLYHUB_BATCH_SIZE:
        return max(1, settings.REPLYHUB_BATCH_SIZE)
    if settings.REPLYHUB_ENGINE not in ("transformers", "chatglm"):  # a remote server
        return 32
    from inference.transformers_backend import pick_device

    return 32 if pick_device(settings.REPLYHUB_DEVICE)[0].startswith("cuda") else 1


def requeue_stale_generation() -> int:
    """Put drafts back in the queue whose worker died mid-generation; returns how many.

    A draft generating for longer than the task timeout belongs to no live task any more:
    django-q2 has killed it, or the worker process is gone.
    """
    cutoff = timezone.now() - timedelta(seconds=settings.Q_CLUSTER["timeout"] + 60)
    stale = list(
        Draft.objects.filter(status=Draft.GENERATING, generating_since__lt=cutoff).values_list(
            "pk", flat=True
        )
    )
    requeued = 0
    for pk in stale:
        with transaction.atomic():
            if Draft.objects.filter(pk=pk, status=Draft.GENERATING).update(
                status=Draft.QUEUED, generating_since=None, version=F("version") + 1
            ):
                requeued += 1
                _enqueue("drafts.tasks.generate_draft", pk)
    if requeued:
        log.warning("Requeued %d draft(s) whose generation was interrupted", requeued)
    return requeued


def _claim_first(draft_id: int) -> Draft | None:
    """The queued draft this task drafts, claimed: one a person asked for again first, then
    ``draft_id``, then the oldest (DraftQuerySet.in_drafting_order); None if none is queued.

    Tasks are interchangeable: every queued draft has one, so a task whose own draft was
    taken (by a batch, or ahead of its turn) drafts another that would otherwise wait
    longer, and a reviewer's rewrite need not wait for the tasks queued before it.
    A claim lost to another worker means that worker took the draft: the task tries the next
    one until it has one or none is queued (giving up earlier could leave a draft queued
    with no task left to draft it).
    """
    order = Draft.objects.in_drafting_order(first=draft_id).select_related("message__mailbox")
    while (draft := order.first()) is not None:
        if draft.claim_for_generation():
            return draft
    return None


def _claim_batch(draft: Draft, size: int) -> list[Draft]:
    """``draft`` and up to ``size - 1`` other queued drafts in drafting order, each claimed.

    Their own tasks later draft whatever is still queued, or return at once.
    """
    batch = [draft]
    if size > 1:
        waiting = Draft.objects.in_drafting_order().select_related("message__mailbox")
        for other in waiting[: size - 1]:
            if other.claim_for_generation():
                batch.append(other)
    return batch


def generate_draft(draft_id: int) -> str:
    """Draft the reply for ``draft_id``, or a more urgent queued one (see _claim_first),
    together with other waiting drafts up to the batch size.

    The model stays loaded in the worker process between tasks (see load_backend).
    """
    requeue_stale_generation()
    draft = _claim_first(draft_id)
    if draft is None:
        return "skipped: not queued"
    batch = _claim_batch(draft, batch_size())
    _heartbeat()
    ids = [d.pk for d in batch]
    task = {"draft_id": draft.pk, "draft_ids": ids, "task": "generate_draft"}
    log.info("Drafting %s", ids, extra={**task, "message_id": draft.message_id})
    try:
        template = PromptTemplate.active()
        rules = SamplingRule.active()
        backend = configured_backend()
        # One pipeline call per mailbox (its company profile) and reviewer's request.
        groups: dict[tuple[int, object, object, object], list[Draft]] = {}
        used: dict[int, PromptTemplate] = {}  # the template each draft was written with
        outcomes = {}
        for d in batch:  # a reviewer asked for another template or temperature, or a change
            requested = d.generation.get("requested") or {}
            key = (
                *(d.message.mailbox_id, requested.get("template"), requested.get("temperature")),
                d.pk if requested.get("instruction") else None,  # a rewrite goes alone
            )
            groups.setdefault(key, []).append(d)
        by_intent = PromptTemplate.active_by_intent()
        for (_, template_id, temperature, _), drafts in groups.items():
            mailbox = drafts[0].message.mailbox
            chosen = PromptTemplate.objects.filter(pk=template_id).first() or template
            # A template the reviewer picked is used whole; otherwise intents may have their own.
            own = {} if template_id else by_intent
            prompts = PromptSet(
                chosen.system_prompt,
                chosen.analysis_prompt,
                chosen.reply_prompt,
                {intent: t.reply_prompt for intent, t in own.items()},
            )
            used.update(dict.fromkeys((d.pk for d in drafts), chosen))
            results = draft_replies(
                backend,
                [email_input(d.message) for d in drafts],
                prompts,
                draft_settings(mailbox, temperature),
                rules,
                examples=examples.finder(settings.REPLYHUB_FEW_SHOT_EXAMPLES)
                if settings.REPLYHUB_FEW_SHOT_EXAMPLES
                else None,
                revisions=[revision_asked(d) for d in drafts],
            )
            outcomes.update({d.pk: r for d, r in zip(drafts, results, strict=True)})
            for d, result in zip(drafts, results, strict=True):
                if result.reply_prompt_intent:
                    used[d.pk] = own[result.reply_prompt_intent]
    except Exception as exc:
        log.exception("Drafts %s: generation failed", ids, extra=task)
        Draft.objects.filter(pk__in=ids, status=Draft.GENERATING).update(
            status=Draft.FAILED,
            error=f"{type(exc).__name__}: {exc}"[:4000],
            generating_since=None,
            requested_at=None,
            version=F("version") + 1,
        )
        notify_api_callbacks(ids)
        return "failed"
    model_name = getattr(backend, "model_name", settings.REPLYHUB_MODEL)
    drafts_by_pk = {d.pk: d for d in batch}
    for pk, outcome in outcomes.items():
        _store(drafts_by_pk[pk], outcome, used[pk], model_name)
        log.info(
            "Draft %s ready",
            pk,
            extra={
                "draft_id": pk,
                "message_id": drafts_by_pk[pk].message_id,
                "task": "generate_draft",
            },
        )
    assignment.share_out(list(outcomes))  # where a mailbox shares its drafts out
    notify_api_callbacks(ids)  # drafts submitted through the API with a callback URL
    log.info("Drafted %d: %s", len(ids), ids, extra=task)
    return f"ready: {len(ids)}"


def revision_asked(draft: Draft) -> Revision | None:
    """The reviewer's requested change to the draft's reply, if they asked for one."""
    requested = draft.generation.get("requested") or {}
    if not requested.get("instruction"):
        return None
    return Revision(reply=requested.get("revise") or "", instruction=requested["instruction"])


def _heartbeat() -> None:
    """A worker drafting a long backlog takes its tasks in order, and the heartbeat task
    waits behind them: drafting is a sign of life too (see drafts.health). Never fails
    the draft."""
    from drafts import health  # drafts.health imports this module

    try:
        health.record_heartbeat()
    except Exception:
        log.exception("Could not record the worker's heartbeat")


def draft_settings(mailbox: Mailbox, temperature: float | None = None) -> DraftSettings:
    """The mailbox's company profile and the settings' limits, as the engine takes them."""
    return DraftSettings(
        company_name=mailbox.effective_company_name,
        signoff=mailbox.effective_signoff,
        mailbox=f"{mailbox.display_name} <{mailbox.address}>".strip(),
        contact_line=mailbox.contact_line,
        max_new_tokens=settings.REPLYHUB_MAX_NEW_TOKENS,
        analysis_max_new_tokens=settings.REPLYHUB_ANALYSIS_MAX_NEW_TOKENS,
        temperature=temperature,
    )


def configured_backend() -> Backend:
    """The engine and model of the settings, loaded once per process (see load_backend)."""
    return load_backend(settings.REPLYHUB_ENGINE, settings.REPLYHUB_MODEL, **backend_options())


def backend_options() -> dict[str, object]:
    """Backend options from the settings: device, or the inference server's address."""
    if settings.REPLYHUB_ENGINE == "openai":
        return {
            "base_url": settings.REPLYHUB_OPENAI_BASE_URL,
            "api_key": settings.REPLYHUB_OPENAI_API_KEY,
            "timeout": settings.REPLYHUB_OPENAI_TIMEOUT,
        }
    return {"device": settings.REPLYHUB_DEVICE}


def _store(draft: Draft, outcome: DraftOutcome, template: PromptTemplate, model_name: str) -> None:
    Draft.objects.filter(pk=draft.pk, status=Draft.GENERATING).update(
        # The intent is known now: a complaint may have a shorter reply target.
        due_at=draft.message.mailbox.due_at(outcome.intent, draft.created_at),
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
            "model": model_name,
            "worker": f"{socket.gethostname()}:{os.getpid()}",  # which of several wrote it
            "raw_reply": outcome.raw_reply,
            "finish_reason": outcome.finish_reason,
            "analysis_notes": outcome.analysis_notes,
            "examples": [int(key) for key in outcome.examples],
            # What the reviewer asked to change, shown with the rewritten draft.
            **({"instruction": asked.instruction} if (asked := revision_asked(draft)) else {}),
            **outcome.sampling,
        },
        prompt_tokens=outcome.prompt_tokens,
        completion_tokens=outcome.completion_tokens,
        timings=outcome.timings,
        generating_since=None,
        requested_at=None,
        ready_at=timezone.now(),
        version=F("version") + 1,
    )

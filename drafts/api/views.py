"""The API's endpoints: plain functions that return data; drafts/api/http.py makes it JSON.

Lookups go through drafts/access.py, so a token sees exactly what its user sees in the
browser, and another mailbox's draft is a 404 like a missing one. Approving and rejecting
call the same model methods as the review page: same rules, same history.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import connections
from django.db.models import Q, QuerySet
from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone

from drafts import copies, preview
from drafts.access import drafts_for, messages_for
from drafts.api import submit
from drafts.api.http import (
    ApiError,
    api_view,
    bad_request,
    content_type,
    integer_field,
    json_body,
    json_response,
    parse_json,
    read_body,
    string_field,
)
from drafts.api.schema import openapi
from drafts.api.serialize import (
    draft_json,
    drafts_with_relations,
    message_json,
    messages_with_relations,
)
from drafts.models import BlockedSender, Draft, Message, PromptTemplate
from drafts.sending import HeaderInjectionError
from inference.drafting import INTENTS
from inference.replycheck import placeholders

DEFAULT_LIMIT, MAX_LIMIT = 50, 200
MAX_REPLY = 100_000  # characters of an approved reply
MAX_NOTE = 5000


def _get(queryset: QuerySet, pk: int) -> Any:
    """The row with this id, or 404; ids beyond 64 bits are missing rows too (not an error)."""
    if pk >= 2**63:
        raise ApiError(404, "not_found", "Not found.")
    return get_object_or_404(queryset, pk=pk)


def _base(request: HttpRequest) -> str:
    """Scheme and host the client used, for absolute URLs in the answer."""
    return request.build_absolute_uri("/").rstrip("/")


# --- Lists ---------------------------------------------------------------------------------


def _limit(request: HttpRequest) -> int:
    value = request.GET.get("limit", str(DEFAULT_LIMIT))
    if not submit.is_number(value) or not 1 <= int(value) <= MAX_LIMIT:
        raise bad_request("limit", f"“limit” must be an integer from 1 to {MAX_LIMIT}.")
    return int(value)


def _query_id(request: HttpRequest, name: str) -> int | None:
    value = request.GET.get(name)
    if value is None:
        return None
    if not submit.is_number(value) or not 1 <= int(value) < 2**63:
        raise bad_request(name, f"“{name}” must be an id (a positive integer).")
    return int(value)


def _query_datetime(request: HttpRequest, name: str) -> datetime | None:
    value = request.GET.get(name)
    return None if value is None else submit.parse_datetime_field(value, name)


def _encode_cursor(*position: object) -> str:
    text = json.dumps(position, default=lambda value: value.isoformat())
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode_cursor(request: HttpRequest, shape: str) -> list | None:
    """The position a ``cursor`` names: [updated_at, id] for drafts, [id] for messages."""
    cursor = request.GET.get("cursor")
    if not cursor:  # absent, or empty: the first page
        return None
    invalid = bad_request("cursor", "“cursor” is not a cursor this API gave out.")
    try:
        position = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if shape == "draft":
            when, pk = position
            when = datetime.fromisoformat(when)
            if when.tzinfo is None:
                raise invalid
            position = [when.astimezone(UTC), pk]
        else:
            [pk] = position
            position = [pk]
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError) as exc:
        raise invalid from exc
    if isinstance(pk, bool) or not isinstance(pk, int) or not 0 <= pk < 2**63:
        raise invalid
    return position


def _page(
    request: HttpRequest, rows: list, limit: int, position_of: Any, results: list
) -> dict[str, Any]:
    """One page of ``results``; ``rows`` has one more row than fits when there is a next."""
    next_cursor = _encode_cursor(*position_of(rows[limit - 1])) if len(rows) > limit else None
    next_url = None
    if next_cursor:
        query = request.GET.copy()
        query["cursor"] = next_cursor
        next_url = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
    return {"results": results, "next_cursor": next_cursor, "next": next_url}


@api_view("GET")
def draft_list(request: HttpRequest) -> dict[str, Any]:
    """The drafts the user may see, oldest change first; filtered, a page at a time."""
    drafts: QuerySet[Draft] = drafts_for(request.user)
    status = request.GET.get("status")
    if status is not None:
        if status not in dict(Draft.STATUSES):
            raise bad_request(
                "status", f"“status” must be one of: {', '.join(dict(Draft.STATUSES))}."
            )
        drafts = drafts.filter(status=status)
    if (mailbox := _query_id(request, "mailbox")) is not None:
        drafts = drafts.filter(mailbox_id=mailbox)
    intent = request.GET.get("intent")
    if intent is not None:
        if intent not in INTENTS:
            raise bad_request("intent", f"“intent” must be one of: {', '.join(INTENTS)}.")
        drafts = drafts.filter(intent=intent)
    if (since := _query_datetime(request, "updated_since")) is not None:
        drafts = drafts.filter(updated_at__gte=since)
    limit = _limit(request)
    if position := _decode_cursor(request, "draft"):
        when, pk = position
        drafts = drafts.filter(Q(updated_at__gt=when) | Q(updated_at=when, pk__gt=pk))
    rows = list(drafts_with_relations(drafts).order_by("updated_at", "id")[: limit + 1])
    base = _base(request)
    return _page(
        request,
        rows,
        limit,
        lambda d: (d.updated_at, d.pk),
        [draft_json(base, d) for d in rows[:limit]],
    )


@api_view("GET", "POST", write=("POST",))
def message_list(request: HttpRequest) -> dict[str, Any] | JsonResponse:
    """GET: the messages the user may see, oldest first. POST: submit an email."""
    if request.method == "POST":
        return _submit_message(request)
    messages: QuerySet[Message] = messages_for(request.user)
    if (mailbox := _query_id(request, "mailbox")) is not None:
        messages = messages.filter(mailbox_id=mailbox)
    if (since := _query_datetime(request, "received_since")) is not None:
        messages = messages.filter(received_at__gte=since)
    limit = _limit(request)
    if position := _decode_cursor(request, "message"):
        messages = messages.filter(pk__gt=position[0])
    rows = list(messages_with_relations(messages).order_by("id")[: limit + 1])
    base = _base(request)
    return _page(
        request, rows, limit, lambda m: (m.pk,), [message_json(base, m) for m in rows[:limit]]
    )


def _submit_message(request: HttpRequest) -> JsonResponse:
    kind = content_type(request)
    if kind == "message/rfc822":
        submission = submit.from_rfc822(read_body(request), request.GET)
    elif kind == "application/json":
        submission = submit.from_json(parse_json(read_body(request)), request.GET)
    else:
        raise ApiError(
            415,
            "unsupported_media_type",
            "Send the email as message/rfc822, or as application/json "
            f"(“raw”, or its fields), not {kind or 'nothing'}.",
        )
    base = _base(request)
    stored = submit.store(submission, request.user, request.api_token, base)
    message = messages_with_relations(Message.objects.filter(pk=stored.message.pk)).get()
    data = message_json(base, message, text=True)
    data["duplicate"] = not stored.created
    data["callback"] = (
        {"id": stored.callback.pk, "url": stored.callback.url, "state": stored.callback.state}
        if stored.callback
        else None
    )
    return json_response(data, status=201 if stored.created else 200, Location=data["url"])


@api_view("GET")
def message_detail(request: HttpRequest, message_id: int) -> dict[str, Any]:
    messages = messages_with_relations(messages_for(request.user))
    return message_json(_base(request), _get(messages, message_id), text=True)


@api_view("GET")
def draft_detail(request: HttpRequest, draft_id: int) -> dict[str, Any]:
    drafts = drafts_with_relations(drafts_for(request.user), history=True)
    return draft_json(_base(request), _get(drafts, draft_id), history=True)


# --- Decisions -----------------------------------------------------------------------------


def _draft_for_decision(request: HttpRequest, draft_id: int) -> Draft:
    return _get(drafts_for(request.user).select_related("message__mailbox"), draft_id)


def _decided(request: HttpRequest, draft: Draft) -> dict[str, Any]:
    drafts = drafts_with_relations(Draft.objects.filter(pk=draft.pk), history=True)
    return draft_json(_base(request), drafts.get(), history=True)


def _refusal(draft: Draft, user: object, version: int | None) -> ApiError:
    """Why an approval or rejection changed nothing, as a 409 (views._refusal's reasons)."""
    current = {"status": draft.status, "version": draft.version}
    holder = draft.held_by()
    if holder and holder != user:
        return ApiError(
            409,
            "claimed",
            f"{holder} is editing this draft until "
            f"{timezone.localtime(draft.claimed_until):%H:%M}; try again when they are done.",
            details={**current, "held_by": str(holder), "held_until": draft.claimed_until},
        )
    if version is not None and draft.version != version and draft.status == Draft.READY:
        return ApiError(
            409,
            "version_conflict",
            f"The draft changed since version {version}; it is at version {draft.version} now. "
            "Read it again and decide on the current text.",
            "version",
            details=current,
        )
    return ApiError(
        409,
        "not_awaiting_review",
        f"The draft is not awaiting review: it is “{draft.status}”.",
        details=current,
    )


@api_view("POST", write=("POST",))
def draft_approve(request: HttpRequest, draft_id: int) -> dict[str, Any]:
    """Approve the draft (optionally with edited text) and queue the reply for sending."""
    draft = _draft_for_decision(request, draft_id)
    data = json_body(request)
    version = integer_field(data, "version", required=True)
    text = string_field(data, "text", max_length=MAX_REPLY)
    text = (draft.reply_text if text is None else text).replace("\r\n", "\n").strip()
    if not text:
        raise bad_request("text", "The reply is empty.", "empty")
    allow = data.get("allow_placeholders", False)
    if not isinstance(allow, bool):
        raise bad_request("allow_placeholders", "“allow_placeholders” must be true or false.")
    if (found := placeholders(text)) and not allow:
        raise ApiError(
            422,
            "placeholder_text",
            f"The reply still has placeholder text ({', '.join(found)}); nothing was approved. "
            "Fill it in, or send allow_placeholders: true to send it as written.",
            "text",
            details={"placeholders": found, "status": draft.status, "version": draft.version},
        )
    cc = data.get("cc")
    if cc is not None:
        if not isinstance(cc, list) or not all(isinstance(a, str) for a in cc):
            raise bad_request("cc", "“cc” must be a list of email addresses.")
        try:
            cc = copies.parse("\n".join(cc), draft.message.reply_address)
        except copies.CopiesRefused as exc:
            raise bad_request("cc", str(exc)) from None
    try:
        approved = draft.approve(request.user, text, version, cc)
    except HeaderInjectionError as exc:
        raise ApiError(
            409,
            "cannot_reply",
            f"This email cannot be answered safely ({exc}); nothing was approved.",
            details={"status": draft.status, "version": draft.version},
        ) from exc
    if not approved:
        raise _refusal(draft, request.user, version)
    return _decided(request, draft)


@api_view("POST", write=("POST",))
def draft_reject(request: HttpRequest, draft_id: int) -> dict[str, Any]:
    """Reject the draft with a reason (one of Draft.REJECT_REASONS) and a note."""
    draft = _draft_for_decision(request, draft_id)
    data = json_body(request)
    reasons = dict(Draft.REJECT_REASONS)
    reason = string_field(data, "reason", required=True, max_length=30)
    if reason not in reasons:
        raise bad_request("reason", f"“reason” must be one of: {', '.join(reasons)}.")
    note = (string_field(data, "note", max_length=MAX_NOTE) or "").strip()
    version = integer_field(data, "version")
    block = data.get("block_sender", False)
    if not isinstance(block, bool):
        raise bad_request("block_sender", "“block_sender” must be true or false.")
    if not draft.reject(request.user, reason, note, version):
        raise _refusal(draft, request.user, version)
    if block:
        BlockedSender.block(draft, request.user)
    return _decided(request, draft)


@api_view("POST", write=("POST",))
def draft_undo(request: HttpRequest, draft_id: int) -> dict[str, Any]:
    """Take back the approval of a reply that has not gone out; the draft is back in review."""
    draft = _draft_for_decision(request, draft_id)
    delivery = draft.delivery
    if delivery is not None and delivery.stop(request.user, hold=False):
        return _decided(request, draft)
    draft.refresh_from_db()
    current = {"status": draft.status, "version": draft.version}
    if draft.status in Draft.HANDED_OVER:
        raise ApiError(
            409,
            "too_late",
            f"Too late to undo: the reply is “{draft.status}” (the mail server has or may "
            "have it).",
            details=current,
        )
    raise ApiError(
        409, "not_approved", f"No approval to undo: the draft is “{draft.status}”.", details=current
    )


@api_view("POST", write=("POST",))
def draft_reopen(request: HttpRequest, draft_id: int) -> dict[str, Any]:
    """Take back a rejection; the draft is back in review with its text."""
    draft = _draft_for_decision(request, draft_id)
    if draft.reopen(request.user, hold=False):
        return _decided(request, draft)
    draft.refresh_from_db()
    current = {"status": draft.status, "version": draft.version}
    if draft.status == Draft.REJECTED:  # still rejected: its email's content is gone
        raise ApiError(
            409,
            "redacted",
            "The retention period has removed this email's content; it cannot be answered.",
            details=current,
        )
    raise ApiError(
        409,
        "not_rejected",
        f"No rejection to take back: the draft is “{draft.status}”.",
        details=current,
    )


@api_view("POST", write=("POST",))
def draft_regenerate(request: HttpRequest, draft_id: int) -> dict[str, Any]:
    """Ask the model for the draft again: at another temperature, with another template, or
    saying what should change (the model then rewrites the reply, or the ``text`` sent)."""
    draft = _draft_for_decision(request, draft_id)
    data = json_body(request)
    instruction = string_field(data, "instruction", max_length=Draft.INSTRUCTION_MAX) or ""
    text = string_field(data, "text", max_length=MAX_REPLY)
    if text is not None and not instruction.strip():
        raise bad_request("text", "“text” is what the model rewrites: send an “instruction” too.")
    temperature = data.get("temperature")
    if temperature is not None and (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not 0 <= temperature <= 2
    ):
        raise bad_request("temperature", "“temperature” must be a number from 0 to 2.")
    template = None
    if (template_id := integer_field(data, "template", minimum=1)) is not None:
        template = PromptTemplate.objects.filter(pk=template_id, is_active=True).first()
        if template is None:
            raise bad_request("template", f"No prompt template {template_id} is in use.")
    version = integer_field(data, "version")
    reply = None if text is None else text.replace("\r\n", "\n").strip()
    if not draft.regenerate(
        request.user, temperature, template, instruction, reply, version=version
    ):
        raise _refusal(draft, request.user, version)
    return _decided(request, draft)


@api_view("POST", write=("POST",))
def draft_note(request: HttpRequest, draft_id: int) -> dict[str, Any]:
    """Add a note for the team to the draft's history; nothing else changes."""
    draft = _draft_for_decision(request, draft_id)
    text = string_field(json_body(request), "text", required=True, max_length=Draft.NOTE_MAX) or ""
    if not text.strip():
        raise bad_request("text", "The note is empty.", "empty")
    draft.add_note(request.user, text.strip())
    return _decided(request, draft)


# --- Analysis ------------------------------------------------------------------------------

# One analysis at a time per web process: the model's decoding state is not shared safely
# between threads, and a slow CPU model must not take every web thread. An analysis past
# its timeout is answered 504 but runs to its end; the next one waits for it.
_analyser = ThreadPoolExecutor(max_workers=1, thread_name_prefix="api-analyse")


def _analyse_in_thread(template: PromptTemplate, email: object, mailbox: object) -> preview.Preview:
    try:
        return preview.run(template, email, mailbox)
    finally:
        connections.close_all()  # this thread's, if the model's code opened any


@api_view("POST")
def analyse(request: HttpRequest) -> dict[str, Any]:
    """Run the configured model on a text now and answer with intent, fields, flags and a
    reply, as the admin's Preview does; nothing is stored."""
    data = json_body(request)
    text = string_field(data, "text", required=True, max_length=submit.MAX_TEXT)
    if not text.strip():
        raise bad_request("text", "“text” is empty.", "empty")
    subject = string_field(data, "subject", max_length=998) or ""
    sender = string_field(data, "from", max_length=998) or ""
    mailbox = submit.mailbox_for(request.user, integer_field(data, "mailbox", minimum=1))
    try:
        template = PromptTemplate.active()
    except PromptTemplate.DoesNotExist as exc:
        raise ApiError(503, "model_failed", str(exc)) from exc
    email = preview.pasted_email(subject, sender, text)
    timeout = settings.REPLYHUB_API_ANALYSE_TIMEOUT
    started = time.monotonic()
    future = _analyser.submit(_analyse_in_thread, template, email, mailbox)
    try:
        result = future.result(timeout=timeout)
    except FutureTimeout as exc:
        future.cancel()  # if it has not started yet, it never will
        raise ApiError(
            504, "timeout", f"The model did not finish within {timeout} seconds."
        ) from exc
    except Exception as exc:  # the model is missing, failed to load, or its server failed
        raise ApiError(
            503, "model_failed", f"The model failed: {type(exc).__name__}: {exc}"[:2000]
        ) from exc
    outcome = result.outcome
    return {
        "intent": outcome.intent,
        "confidence": outcome.confidence,
        "intent_scores": outcome.intent_scores,
        "language": outcome.language,
        "fields": outcome.fields,
        "flags": list(outcome.flags),
        "reply": outcome.reply,
        "template": result.prompts_from,
        "seconds": round(time.monotonic() - started, 3),
    }


# --- Others --------------------------------------------------------------------------------


@api_view("GET", public=True)
def schema(request: HttpRequest) -> dict[str, Any]:
    """The OpenAPI description of this API."""
    return openapi()


@api_view("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", public=True)
def not_found(request: HttpRequest, rest: str = "") -> dict[str, Any]:
    """Any other path under /api/: a JSON 404, not the HTML page."""
    raise ApiError(404, "not_found", f"There is no API endpoint at {request.path}.")

"""Drafts and messages as the API returns them: ids as integers, datetimes in ISO 8601.

The shapes are described in drafts/api/schema.py; change both together. URLs are absolute,
built on ``base``: the scheme and host the client used (e.g. ``https://replyhub.example``).
"""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet
from django.urls import reverse

from drafts import copies
from drafts.models import Attachment, Draft, Message, ReplyAttachment, ReviewEvent


def _url(base: str, name: str, pk: int) -> str:
    return base + reverse(name, args=[pk])


def _username(user: object | None) -> str | None:
    return getattr(user, "username", None) if user is not None else None


def drafts_with_relations(drafts: QuerySet[Draft], history: bool = False) -> QuerySet[Draft]:
    """``drafts`` with what draft_json reads, fetched in a fixed number of queries."""
    drafts = drafts.select_related(
        "message", "template", "assigned_to", "claimed_by", "decided_by"
    ).prefetch_related(
        "deliveries",
        Prefetch(
            "reply_attachments",
            ReplyAttachment.objects.only("id", "filename", "content_type", "size", "draft_id"),
        ),
    )
    if history:
        drafts = drafts.prefetch_related(
            Prefetch(
                "events", ReviewEvent.objects.select_related("user").order_by("created_at", "id")
            )
        )
    return drafts


def draft_json(base: str, draft: Draft, history: bool = False) -> dict[str, Any]:
    """A draft with its message's summary, delivery and (with ``history``) what people did."""
    message = draft.message
    holder = draft.held_by()
    deliveries = sorted(draft.deliveries.all(), key=lambda d: d.pk)
    delivery = deliveries[-1] if deliveries else None
    data = {
        "id": draft.pk,
        "url": _url(base, "api_draft", draft.pk),
        "page": _url(base, "draft", draft.pk),
        "status": draft.status,
        "mailbox": draft.mailbox_id,
        "message": {
            "id": message.pk,
            "url": _url(base, "api_message", message.pk),
            "subject": message.subject,
            "from_name": message.from_name,
            "from_address": message.from_address,
            "date": message.date,
        },
        "intent": draft.intent or None,
        "confidence": draft.confidence,
        "intent_scores": draft.intent_scores or {},
        "language": draft.language or None,
        "fields": draft.fields or {},
        "flags": list(draft.flags or []),
        "reply_text": draft.reply_text,
        "cc": copies.of(draft.cc),
        "generated_text": draft.generated_text,
        "rewrite_instruction": (draft.generation or {}).get("instruction"),
        "version": draft.version,
        "error": draft.error,
        "template": (
            {
                "id": draft.template.pk,
                "name": draft.template.name,
                "version": draft.template.version,
            }
            if draft.template
            else None
        ),
        "assigned_to": _username(draft.assigned_to),
        "held_by": (
            {"user": _username(holder), "until": draft.claimed_until}
            if holder is not None
            else None
        ),
        "created_at": draft.created_at,
        "ready_at": draft.ready_at,
        "due_at": draft.due_at,
        "updated_at": draft.updated_at,
        "decided_at": draft.decided_at,
        "decided_by": _username(draft.decided_by),
        "reject_reason": draft.reject_reason or None,
        "reject_note": draft.reject_note,
        "delivery": (
            {
                "state": delivery.state,
                "recipient": delivery.recipient,
                "message_id": delivery.message_id,
                "attempts": delivery.attempts,
                "next_attempt_at": delivery.next_attempt_at,
                "undo_until": delivery.undo_until,
                "last_error": delivery.last_error,
                "server_reply": delivery.server_reply,
                "sent_at": delivery.sent_at,
            }
            if delivery
            else None
        ),
        "files": [
            {"id": f.pk, "filename": f.filename, "content_type": f.content_type, "size": f.size}
            for f in draft.reply_attachments.all()
        ],
    }
    if history:
        data["history"] = [event_json(event) for event in draft.events.all()]
    return data


def event_json(event: ReviewEvent) -> dict[str, Any]:
    return {
        "action": event.action,
        "user": _username(event.user),
        "created_at": event.created_at,
        "text_before": event.text_before,
        "text_after": event.text_after,
        "reason": event.reason or None,
        "note": event.note,
    }


def messages_with_relations(messages: QuerySet[Message]) -> QuerySet[Message]:
    """``messages`` with their draft and attachments' names (never the attachments' bytes)."""
    names = Attachment.objects.only(
        "id", "message_id", "filename", "content_type", "size", "inline"
    )
    return (
        messages.select_related("draft")
        .defer("raw", "html", "search_text", "headers", "model_text")
        .prefetch_related(Prefetch("attachments", names.order_by("id")))
    )


def message_json(base: str, message: Message, text: bool = False) -> dict[str, Any]:
    """A message as received; its text only with ``text`` (lists leave it out)."""
    try:
        draft = message.draft
    except Draft.DoesNotExist:
        draft = None
    data = {
        "id": message.pk,
        "url": _url(base, "api_message", message.pk),
        "page": _url(base, "message", message.pk),
        "mailbox": message.mailbox_id,
        "thread": message.thread_id,
        "direction": message.direction,
        "message_id": message.message_id,
        "in_reply_to": message.in_reply_to,
        "subject": message.subject,
        "from_name": message.from_name,
        "from_address": message.from_address,
        "reply_to": message.reply_to,
        "to": message.to,
        "cc": message.cc,
        "date": message.date,
        "received_at": message.received_at,
        "redacted_at": message.redacted_at,
        "size": message.size,
        "no_draft_reason": message.auto_kind or None,
        "defects": list(message.defects or []),
        "attachments": [
            {
                "id": a.pk,
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "inline": a.inline,
            }
            for a in message.attachments.all()
        ],
        "draft": (
            {
                "id": draft.pk,
                "url": _url(base, "api_draft", draft.pk),
                "status": draft.status,
                "version": draft.version,
            }
            if draft
            else None
        ),
    }
    if text:
        data["text"] = message.text
    return data

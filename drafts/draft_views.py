"""The draft page: one draft beside its email, its claim while open, its progress while the
model writes it, and its files; what a reviewer does with it (edit, approve, reject,
regenerate, reassign, notes and files) is in drafts/draft_actions.py. Views stay thin."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db.models import F
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_POST

from drafts import copies, fields, saved_replies
from drafts.access import drafts_for, mailboxes_for, reviewers_of
from drafts.mail_views import as_download
from drafts.models import Draft, Message, Outbox, PromptTemplate
from inference.replycheck import placeholders


def get_draft(request: HttpRequest, draft_id: int) -> Draft:
    """The draft, if the user may see its mailbox; otherwise 404, as for a missing id."""
    return get_object_or_404(
        drafts_for(request.user).select_related("message__mailbox", "message__thread", "template"),
        pk=draft_id,
    )


@login_required
def draft_detail(request: HttpRequest, draft_id: int) -> HttpResponse:
    """One draft beside its email, with the actions a reviewer can take."""
    draft = get_draft(request, draft_id)
    # Opening a draft awaiting review claims it; the page renews the claim while open.
    if draft.status == Draft.READY:
        draft.claim(request.user)
    thread = []
    if draft.message.thread_id:
        thread = draft.message.thread.messages.exclude(pk=draft.message_id).order_by("date", "id")
    waiting = drafts_for(request.user).filter(status=Draft.READY).exclude(pk=draft.pk)
    next_draft = (
        waiting.filter(created_at__gte=draft.created_at)
        .order_by("created_at", "id")
        .values_list("id", flat=True)
        .first()
    )
    previous_draft = (
        waiting.filter(created_at__lte=draft.created_at)
        .order_by("-created_at", "-id")
        .values_list("id", flat=True)
        .first()
    )
    field_rows, text_segments = fields.annotate(draft.message.text, draft.fields or {})
    earlier, earlier_count = _customer_history(request, draft.message)
    reply_text = request.session.pop(kept_key(draft.pk), None) or draft.reply_text
    delivery = draft.delivery
    return render(
        request,
        "drafts/draft_detail.html",
        {
            "draft": draft,
            "progress": _progress(draft),
            "field_rows": field_rows,
            "delivery": delivery,
            # Not delivered and not being sent: the approval may still be taken back.
            "stoppable": delivery is not None and delivery.state in Outbox.STOPPABLE,
            "flags": [fields.describe_flag(flag) for flag in draft.flags],
            "text_segments": text_segments,
            "message": draft.message,
            "thread": thread,
            "customer_history": earlier,
            "customer_history_count": earlier_count,
            "events": draft.events.select_related("user"),
            "reject_reasons": Draft.REJECT_REASONS,
            "next_draft": next_draft,
            "previous_draft": previous_draft,
            "templates": PromptTemplate.objects.filter(is_active=True),
            "reviewers": reviewers_of(draft.message.mailbox),
            "remote_images": request.GET.get("remote") == "1",
            "holder": draft.held_by(),
            "unsaved_text": request.session.pop(unsaved_key(draft.pk), ""),
            "kept_note": request.session.pop(note_key(draft.pk), ""),
            "reply_files": draft.reply_attachments.only(
                "id", "filename", "content_type", "size", "draft_id"
            ),
            "reply_files_limit": settings.REPLYHUB_REPLY_FILES_MAX_BYTES,
            "note_max": Draft.NOTE_MAX,
            "instruction_max": Draft.INSTRUCTION_MAX,
            "instruction_picks": INSTRUCTION_PICKS,
            "reply_text": reply_text,
            "cc_text": request.session.pop(kept_cc_key(draft.pk), None)
            or ", ".join(copies.of(draft.cc)),
            "placeholders": placeholders(reply_text) if draft.status == Draft.READY else [],
            "saved_replies": (
                saved_replies.for_page(draft, request.user) if draft.status == Draft.READY else []
            ),
        },
    )


CUSTOMER_HISTORY = 10
# What reviewers most often ask of a rewrite, one click each on the draft page.
INSTRUCTION_PICKS = [
    gettext_lazy("shorter"),
    gettext_lazy("more formal"),
    gettext_lazy("warmer"),
    gettext_lazy("apologise for the trouble"),
    gettext_lazy("answer every question in the email"),
]


def _customer_history(request: HttpRequest, message: Message) -> tuple[list[Message], int]:
    """The customer's other conversations the reviewer may see, newest first (the first
    few), and how many there are."""
    mailboxes = dict(mailboxes_for(request.user).values_list("id", "address"))
    if not message.from_address or message.from_address in mailboxes.values():
        return [], 0  # our own address is no customer: its mail is our replies
    # By mailbox id and address alone, so that SQLite too takes the (mailbox, from_address,
    # received_at) index: with direction as well it chose (mailbox, direction) and read
    # every message (240 ms at 100,000). The customer's address sends only inbound mail.
    others = Message.objects.filter(mailbox_id__in=mailboxes, from_address=message.from_address)
    others = others.exclude(pk=message.pk)
    if message.thread_id:
        others = others.exclude(thread_id=message.thread_id)
    shown = list(
        others.select_related("draft")
        .only(
            *("id", "subject", "date", "received_at", "mailbox_id", "thread_id"),
            *("draft__id", "draft__status", "draft__intent"),
        )
        .order_by("-received_at", "-id")[:CUSTOMER_HISTORY]
    )
    return shown, others.count() if len(shown) == CUSTOMER_HISTORY else len(shown)


@login_required
def reply_file(request: HttpRequest, draft_id: int, file_id: int) -> HttpResponse:
    """A file attached to a reply, only ever as a download (as the customer's attachments)."""
    draft = get_draft(request, draft_id)
    file = get_object_or_404(draft.reply_attachments, pk=file_id)
    return as_download(bytes(file.data), file.filename)


@login_required
@require_POST
def saved_reply_used(request: HttpRequest, draft_id: int, saved_id: int) -> HttpResponse:
    """Count an insertion of a saved reply the draft's page offered (admins see the counts)."""
    draft = get_draft(request, draft_id)
    counted = saved_replies.offered(draft).filter(pk=saved_id).update(uses=F("uses") + 1)
    return HttpResponse(status=204 if counted else 404)


def unsaved_key(draft_id: int) -> str:
    return f"unsaved-reply-{draft_id}"


def kept_cc_key(draft_id: int) -> str:
    """The copies of an edit or approval refused for one of them, for their field."""
    return f"kept-cc-{draft_id}"


def note_key(draft_id: int) -> str:
    """A note refused for its length, for the note box."""
    return f"kept-note-{draft_id}"


def kept_key(draft_id: int) -> str:
    """The reviewer's text of an approval refused for placeholders, for the editor."""
    return f"kept-reply-{draft_id}"


@login_required
@require_POST
def draft_claim(request: HttpRequest, draft_id: int) -> JsonResponse:
    """Renew (or, with release=1, give up) the user's hold on a draft they have open."""
    draft = get_draft(request, draft_id)
    if request.POST.get("release") == "1":
        try:
            until = datetime.fromisoformat(request.POST.get("until", ""))
        except ValueError:
            until = None
        draft.release(request.user, until)
        return JsonResponse({"held": False})
    held = draft.claim(request.user)
    holder = draft.held_by()
    return JsonResponse(
        {
            "held": held,
            "holder": str(holder) if holder else "",
            "until": draft.claimed_until.isoformat() if draft.claimed_until else None,
            "version": draft.version,  # a claim never changes the version
        }
    )


@login_required
def draft_progress(request: HttpRequest, draft_id: int) -> JsonResponse:
    """Where a draft waiting for the model stands: its page follows it without a reload."""
    draft = get_draft(request, draft_id)
    return JsonResponse(
        {"status": draft.status, "version": draft.version, "progress": _progress(draft)}
    )


def _progress(draft: Draft) -> str:
    """The draft's place with the model, in words, while it waits for one; else ''."""
    if draft.status == Draft.GENERATING:
        return _("The model is writing this draft now.")
    if draft.status != Draft.QUEUED:
        return ""
    ahead = draft.drafts_ahead()
    if not ahead:
        return _("Waiting for the model: this draft is next.")
    return ngettext(
        "Waiting for the model: %(count)d draft before this one.",
        "Waiting for the model: %(count)d drafts before this one.",
        ahead,
    ) % {"count": ahead}

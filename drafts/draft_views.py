"""The draft page: one draft beside its email, and what a reviewer does with it (edit,
approve, reject, regenerate, reassign, notes and files). Views stay thin."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import F
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_POST

from drafts import fields, reply_files, saved_replies
from drafts.access import drafts_for, mailboxes_for, reviewers_of
from drafts.context_processors import UNDO_OFFERS
from drafts.mail_views import as_download
from drafts.models import BlockedSender, Draft, Message, Outbox, PromptTemplate
from drafts.sending import HeaderInjectionError
from inference.replycheck import placeholders


def _get_draft(request: HttpRequest, draft_id: int) -> Draft:
    """The draft, if the user may see its mailbox; otherwise 404, as for a missing id."""
    return get_object_or_404(
        drafts_for(request.user).select_related("message__mailbox", "message__thread", "template"),
        pk=draft_id,
    )


@login_required
def draft_detail(request: HttpRequest, draft_id: int) -> HttpResponse:
    """One draft beside its email, with the actions a reviewer can take."""
    draft = _get_draft(request, draft_id)
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
    reply_text = request.session.pop(_kept_key(draft.pk), None) or draft.reply_text
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
            "unsaved_text": request.session.pop(_unsaved_key(draft.pk), ""),
            "kept_note": request.session.pop(_note_key(draft.pk), ""),
            "reply_files": draft.reply_attachments.only(
                "id", "filename", "content_type", "size", "draft_id"
            ),
            "reply_files_limit": settings.REPLYHUB_REPLY_FILES_MAX_BYTES,
            "note_max": Draft.NOTE_MAX,
            "instruction_max": Draft.INSTRUCTION_MAX,
            "instruction_picks": INSTRUCTION_PICKS,
            "reply_text": reply_text,
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
    draft = _get_draft(request, draft_id)
    file = get_object_or_404(draft.reply_attachments, pk=file_id)
    return as_download(bytes(file.data), file.filename)


@login_required
@require_POST
def saved_reply_used(request: HttpRequest, draft_id: int, saved_id: int) -> HttpResponse:
    """Count an insertion of a saved reply the draft's page offered (admins see the counts)."""
    draft = _get_draft(request, draft_id)
    counted = saved_replies.offered(draft).filter(pk=saved_id).update(uses=F("uses") + 1)
    return HttpResponse(status=204 if counted else 404)


@login_required
@require_POST
def draft_action(request: HttpRequest, draft_id: int) -> HttpResponse:
    """Save edit, approve, reject or retry; each is a guarded state change."""
    draft = _get_draft(request, draft_id)
    action = request.POST.get("action", "")
    text = request.POST.get("reply_text", draft.reply_text).replace("\r\n", "\n").strip()
    done_url = reverse("draft", args=[draft.pk])
    if action in ("save", "approve") and not text:
        messages.error(request, _("The reply is empty."))
        return redirect(done_url)
    version = int(request.POST["version"]) if request.POST.get("version", "").isdigit() else None
    if action in ("note", "attach", "detach") and "reply_text" in request.POST:
        # These reload the page: the reply being edited (not saved) comes back with it.
        if draft.status == Draft.READY:
            request.session[_kept_key(draft.pk)] = text
    if action == "save":
        ok = draft.save_edit(request.user, text, version)
        notice = _("Edit saved.")
    elif action == "approve":
        found = placeholders(text)
        if found and not request.POST.get("placeholders_ok"):
            messages.error(
                request,
                _(
                    "Not sent: the reply still has placeholder text (%(found)s). Fill it in, "
                    "or tick “Send the brackets as written” if they belong in the reply."
                )
                % {"found": ", ".join(found)},
            )
            request.session[_kept_key(draft.pk)] = text  # back in the editor, not lost
            return redirect(done_url)
        try:
            ok = draft.approve(request.user, text, version)
        except HeaderInjectionError as exc:
            messages.error(
                request,
                _("This email cannot be answered safely (%(problem)s); nothing was approved.")
                % {"problem": exc},
            )
            return redirect(done_url)
        notice = _("Approved. The reply is being sent.")
        if ok and (until := draft.delivery.undo_until) and until > timezone.now():
            _offer_undo(request, draft, until)
            notice = ""  # the undo banner says it, with the time
    elif action == "reject":
        reason = request.POST.get("reason", "")
        if reason not in dict(Draft.REJECT_REASONS):
            messages.error(request, _("Choose a reason to reject the draft."))
            return redirect(done_url)
        ok = draft.reject(request.user, reason, request.POST.get("note", "").strip(), version)
        notice = _("Draft rejected.")
        if (
            ok
            and request.POST.get("block_sender") == "1"
            and BlockedSender.block(draft, request.user)
        ):
            notice = _(
                "Draft rejected, and %(address)s is blocked: their next emails get no draft."
            ) % {"address": draft.message.from_address}
    elif action == "retry":
        ok = draft.retry_generation(request.user)
        notice = _("Queued for the model again.")
    elif action == "regenerate":
        try:
            temperature = (
                float(request.POST["temperature"]) if request.POST.get("temperature") else None
            )
        except ValueError:
            temperature = None
        if temperature is not None and not 0 <= temperature <= 2:
            messages.error(request, _("The temperature must be between 0 and 2."))
            return redirect(done_url)
        template = PromptTemplate.objects.filter(pk=request.POST.get("template") or 0).first()
        instruction = request.POST.get("instruction", "").strip()
        if len(instruction) > Draft.INSTRUCTION_MAX:
            messages.error(
                request,
                _("What should change is limited to %(max)s characters; this was %(n)s.")
                % {"max": Draft.INSTRUCTION_MAX, "n": len(instruction)},
            )
            request.session[_kept_key(draft.pk)] = text  # back in the editor, not lost
            return redirect(done_url)
        # The model rewrites what is in the editor, unsaved edits included.
        edited = text if "reply_text" in request.POST else None
        ok = draft.regenerate(request.user, temperature, template, instruction, edited)
        notice = _("Queued for the model again.")
    elif action == "reassign":
        to = reviewers_of(draft.message.mailbox).filter(pk=request.POST.get("to") or 0).first()
        ok = draft.reassign(request.user, to)
        notice = _("Assigned to %(user)s.") % {"user": to} if to else _("Unassigned.")
    elif action in ("attach", "detach"):
        if action == "attach":
            try:
                files = reply_files.read_uploads(draft, request.FILES.getlist("files"))
            except reply_files.FileRefused as exc:
                messages.error(request, str(exc))
                return redirect(done_url + "#reply-files")
            ok = draft.attach(request.user, files, version)
            notice = ngettext(
                "Attached %(count)s file to the reply.",
                "Attached %(count)s files to the reply.",
                len(files),
            ) % {"count": len(files)}
        else:
            file_id = request.POST.get("file", "")
            ok = file_id.isdigit() and draft.detach(request.user, int(file_id), version)
            notice = _("The file is taken off the reply.")
        if ok:
            messages.success(request, notice)
        else:
            draft.refresh_from_db()
            messages.error(request, _refusal(draft, request.user, version))
        return redirect(done_url + "#reply-files")
    elif action == "note":
        note = request.POST.get("note", "").strip()
        if not note:
            messages.error(request, _("The note is empty."))
        elif len(note) > Draft.NOTE_MAX:
            messages.error(
                request,
                _("The note is %(length)s characters long; at most %(max)s fit.")
                % {"length": len(note), "max": Draft.NOTE_MAX},
            )
            request.session[_note_key(draft.pk)] = note  # back in its box, not lost
        else:
            draft.add_note(request.user, note)
            messages.success(request, _("Note added for the team."))
        return redirect(done_url + "#notes")
    elif action == "reopen":
        ok = draft.reopen(request.user)
        notice = _("The rejection is taken back: the draft awaits review, held for you.")
    elif action == "undo":
        delivery = draft.delivery
        ok = bool(delivery) and delivery.stop(request.user)
        _withdraw_undo(request, draft.pk)
        notice = _("Not sent: the approval is undone. The draft is back in review, held for you.")
        if not ok:
            draft.refresh_from_db()
            messages.error(request, _too_late(draft))
            return redirect(done_url)
    elif action in ("retry_send", "confirm_sent"):
        delivery = draft.delivery
        if action == "retry_send":
            ok = bool(delivery) and delivery.send_again(request.user)
            notice = _("Queued for sending again.")
        else:
            ok = bool(delivery) and delivery.confirm_delivered(request.user)
            notice = _("Marked as delivered; nothing more will be sent.")
    else:
        messages.error(request, _("Unknown action %(action)s.") % {"action": repr(action)})
        return redirect(done_url)
    if ok:
        if notice:
            messages.success(request, notice)
        request.session.pop(_unsaved_key(draft.pk), None)
        next_id = request.POST.get("next", "")
        if action in ("approve", "reject") and next_id.isdigit():
            return redirect(reverse("draft", args=[int(next_id)]))
    else:
        messages.error(request, _refusal(draft, request.user, version))
        if action in ("save", "approve"):
            # Never lost, never written over the newer text: shown beside it instead.
            request.session[_unsaved_key(draft.pk)] = text
    return redirect(done_url)


def _offer_undo(request: HttpRequest, draft: Draft, until: datetime) -> None:
    """Show an Undo banner on the next pages until the reply's undo window closes."""
    offers = [o for o in request.session.get(UNDO_OFFERS, []) if o["draft"] != draft.pk]
    subject = draft.message.subject or _("(no subject)")
    offers.append({"draft": draft.pk, "until": until.isoformat(), "subject": subject[:80]})
    request.session[UNDO_OFFERS] = offers


def _withdraw_undo(request: HttpRequest, draft_id: int) -> None:
    offers = request.session.get(UNDO_OFFERS, [])
    if any(o["draft"] == draft_id for o in offers):
        request.session[UNDO_OFFERS] = [o for o in offers if o["draft"] != draft_id]


def _too_late(draft: Draft) -> str:
    """Why an undo changed nothing."""
    if draft.status == Draft.READY:
        return _("Nothing to undo: the draft is already back in review.")
    if draft.status in Draft.HANDED_OVER:
        return _("Too late to undo: the reply is “%(status)s”.") % {
            "status": draft.get_status_display()
        }
    return _("Nothing to undo: the draft is “%(status)s”.") % {"status": draft.get_status_display()}


def _unsaved_key(draft_id: int) -> str:
    return f"unsaved-reply-{draft_id}"


def _note_key(draft_id: int) -> str:
    """A note refused for its length, for the note box."""
    return f"kept-note-{draft_id}"


def _kept_key(draft_id: int) -> str:
    """The reviewer's text of an approval refused for placeholders, for the editor."""
    return f"kept-reply-{draft_id}"


def _refusal(draft: Draft, user: object, version: int | None) -> str:
    """Why a reviewer's action changed nothing, in their words."""
    holder = draft.held_by()
    if holder and holder != user:
        return _(
            "Nothing changed: %(holder)s is editing this draft (until %(until)s). "
            "Try again when they are done."
        ) % {"holder": holder, "until": f"{timezone.localtime(draft.claimed_until):%H:%M}"}
    if version is not None and draft.version != version and draft.status == Draft.READY:
        return _(
            "Nothing changed: someone else changed this draft after you opened it. "
            "Their version is shown now; your text is kept below it."
        )
    return _(
        "Nothing changed: this draft is now “%(status)s”. Someone else may have acted on it first."
    ) % {"status": draft.get_status_display()}


@login_required
@require_POST
def draft_claim(request: HttpRequest, draft_id: int) -> JsonResponse:
    """Renew (or, with release=1, give up) the user's hold on a draft they have open."""
    draft = _get_draft(request, draft_id)
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
    draft = _get_draft(request, draft_id)
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

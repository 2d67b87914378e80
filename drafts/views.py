"""Review pages: the queue, a draft with its email, and the stats. Views stay thin."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, F, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_POST

from drafts import bulk, charts, fields, reply_files, saved_replies, search, stats
from drafts.access import drafts_for, mailboxes_for, reviewers_of, supervisor_required
from drafts.context_processors import UNDO_OFFERS
from drafts.mail_views import as_download
from drafts.models import INTENT_CHOICES, BlockedSender, Draft, Message, Outbox, PromptTemplate
from drafts.sending import HeaderInjectionError
from inference.drafting import INTENTS
from inference.replycheck import placeholders

QUEUE_TABS = [
    ("review", gettext_lazy("Awaiting review"), [Draft.READY]),
    ("pending", gettext_lazy("In progress"), [Draft.QUEUED, Draft.GENERATING]),
    ("problems", gettext_lazy("Failed"), [Draft.FAILED, Draft.SEND_FAILED, Draft.SEND_UNCERTAIN]),
    ("sent", gettext_lazy("Approved & sent"), [Draft.APPROVED, Draft.SENDING, Draft.SENT]),
    ("rejected", gettext_lazy("Rejected"), [Draft.REJECTED]),
]
# The queue's orders: ?order= -> (label, columns); drafts without a reply target come last
# when ordered by due time.
QUEUE_ORDERS = {
    "": (gettext_lazy("Oldest first"), ("created_at", "id")),
    "newest": (gettext_lazy("Newest first"), ("-created_at", "-id")),
    "due": (gettext_lazy("Due soonest"), (F("due_at").asc(nulls_last=True), "created_at", "id")),
}
PAGE_SIZE = 50
SEARCH_COUNT_LIMIT = 1000
# What may be done to several drafts of a tab at once (none on "sent": nothing to undo there).
BULK_ACTIONS = {
    "review": ("reject", "assign"),
    "pending": ("assign",),
    "problems": ("assign",),
    "rejected": ("reopen",),
}
# The drafts a bulk rejection has just rejected, offered back on the next queue page.
JUST_REJECTED = "bulk-rejected"


def _get_draft(request: HttpRequest, draft_id: int) -> Draft:
    """The draft, if the user may see its mailbox; otherwise 404, as for a missing id."""
    return get_object_or_404(
        drafts_for(request.user).select_related("message__mailbox", "message__thread", "template"),
        pk=draft_id,
    )


def _filtered(request: HttpRequest, drafts: QuerySet[Draft]) -> tuple[QuerySet[Draft], dict]:
    """The queue's filters from the query string; unknown values are ignored."""
    get = request.GET
    chosen = {}
    if get.get("intent") in INTENTS:
        chosen["intent"] = get["intent"]
        drafts = drafts.filter(intent=get["intent"])
    if get.get("language") in ("zh", "en"):
        chosen["language"] = get["language"]
        drafts = drafts.filter(language=get["language"])
    if get.get("mailbox", "").isdigit():
        chosen["mailbox"] = int(get["mailbox"])
        drafts = drafts.filter(mailbox_id=chosen["mailbox"])
    if get.get("flagged") == "1":
        chosen["flagged"] = True
        drafts = drafts.filter(flagged=True)
    if get.get("mine") == "1":
        chosen["mine"] = True
        drafts = drafts.filter(assigned_to=request.user)
    if get.get("overdue") == "1":
        chosen["overdue"] = True
        drafts = drafts.overdue()
    query = get.get("q", "").strip()[:200]
    if search.terms(query):
        chosen["q"] = query
    return drafts, chosen


def _counts(drafts: QuerySet[Draft], query: str | None) -> tuple[Counter, bool]:
    """Drafts per status, and whether the counts are only lower bounds.

    A search counts among its first SEARCH_COUNT_LIMIT matching messages: counting every
    match of a broad search ("invoice" in half of 100,000 emails) costs PostgreSQL a visit
    to each matching row, 150 ms, and nobody pages that far.
    """
    at_least = False
    if query:
        matches = search.first_matching_ids(query, SEARCH_COUNT_LIMIT + 1)
        at_least = len(matches) > SEARCH_COUNT_LIMIT
        drafts = drafts.filter(message_id__in=matches[:SEARCH_COUNT_LIMIT])
    return Counter(dict(drafts.order_by().values_list("status").annotate(n=Count("id")))), at_least


@login_required
def queue(request: HttpRequest) -> HttpResponse:
    """Drafts by status, oldest first: the reviewer's work list, filtered and paged.

    With ?fragment=1 only the table and the counts are rendered: the page polls that to
    show new drafts without a reload.
    """
    tab = request.GET.get("tab", "review")
    tabs = {key: (label, statuses) for key, label, statuses in QUEUE_TABS}
    if tab not in tabs:
        tab = "review"
    visible = drafts_for(request.user)
    filtered, chosen = _filtered(request, visible)
    order = request.GET.get("order", "")
    if order not in QUEUE_ORDERS:
        order = ""
    counts, at_least = _counts(filtered, chosen.get("q"))
    if "q" in chosen:
        filtered = filtered.filter(message_id__in=search.matching_message_ids(chosen["q"]))
    # A page is found by its ids alone, which indexes hold in order (or sort small), then
    # its 50 rows are read: sorting whole rows cost SQLite 100 ms with 30,000 overdue.
    ids = filtered.filter(status__in=tabs[tab][1]).order_by(*QUEUE_ORDERS[order][1])
    tab_list = [
        {"key": key, "label": label, "count": sum(counts.get(s, 0) for s in statuses)}
        for key, label, statuses in QUEUE_TABS
    ]
    paginator = Paginator(ids.values_list("id", flat=True), PAGE_SIZE)
    paginator.count = next(t["count"] for t in tab_list if t["key"] == tab)  # counted above
    page = paginator.get_page(request.GET.get("page"))
    rows = (
        Draft.objects.select_related("message", "assigned_to")
        .only(
            "assigned_to__username",
            "id",
            "status",
            "intent",
            "confidence",
            "flags",
            "error",
            "send_error",
            "created_at",
            "due_at",
            "version",
            "message__subject",
            "message__from_name",
            "message__from_address",
            "message__date",
        )
        .in_bulk(list(page.object_list))
    )
    page.object_list = [rows[pk] for pk in page.object_list if pk in rows]
    keep = request.GET.copy()
    keep.pop("page", None)
    keep.pop("fragment", None)
    context = {
        "drafts": page.object_list,
        "page": page,
        "tab": tab,
        "tabs": tab_list,
        "chosen": chosen,
        "order": order,
        "orders": [(key, label) for key, (label, _columns) in QUEUE_ORDERS.items()],
        "intents": INTENT_CHOICES,
        "mailboxes": mailboxes_for(request.user),
        # The due column, the overdue filter and the due order, where a mailbox has a target.
        "has_targets": mailboxes_for(request.user)
        .filter(reply_within_hours__isnull=False)
        .exists(),
        "query_string": keep.urlencode(),
        "failed_count": counts.get(Draft.FAILED, 0),
        "at_least": at_least,
        "search_count_limit": SEARCH_COUNT_LIMIT,
    }
    context["bulk_actions"] = BULK_ACTIONS.get(tab, ())
    if request.GET.get("fragment"):
        return render(request, "drafts/_queue_table.html", context)
    if "assign" in context["bulk_actions"]:
        context["assignees"] = reviewers_of(context["mailboxes"])
    context["reject_reasons"] = Draft.REJECT_REASONS
    context["just_rejected"] = request.session.pop(JUST_REJECTED, [])
    return render(request, "drafts/queue.html", context)


@login_required
@require_POST
def queue_bulk(request: HttpRequest) -> HttpResponse:
    """Reject, assign or reopen the drafts ticked in the queue, each as on its own page."""
    back = request.POST.get("back", "")
    if not url_has_allowed_host_and_scheme(back, {request.get_host()}) or not back.startswith("/"):
        back = reverse("queue")
    try:
        selection = bulk.parse_selection(request.POST.getlist("draft"))
    except bulk.SelectionError as exc:
        messages.error(request, str(exc))
        return redirect(back)
    action = request.POST.get("action", "")
    if action == "reject":
        reason = request.POST.get("reason", "")
        if reason not in dict(Draft.REJECT_REASONS):
            messages.error(request, _("Choose a reason to reject the selected drafts."))
            return redirect(back)
        outcome = bulk.reject(request.user, selection, reason, request.POST.get("note", "").strip())
        done = ngettext(
            "Rejected %(count)s draft.", "Rejected %(count)s drafts.", len(outcome.done)
        )
        if outcome.done:
            request.session[JUST_REJECTED] = [d.pk for d in outcome.done]
        if request.POST.get("block_sender") == "1":
            blocked = {BlockedSender.block(d, request.user) for d in outcome.done} - {None}
            if blocked:
                done += " " + ngettext(
                    "%(senders)s sender is blocked: their next emails get no draft.",
                    "%(senders)s senders are blocked: their next emails get no draft.",
                    len(blocked),
                ) % {"senders": len(blocked)}
    elif action == "assign":
        to = request.POST.get("to", "")
        if to != "nobody" and not to.isdigit():
            messages.error(request, _("Choose whom to assign the selected drafts to."))
            return redirect(back)
        outcome = bulk.assign(request.user, selection, int(to) if to.isdigit() else None)
        if to.isdigit():
            done = ngettext(
                "Assigned %(count)s draft to %(user)s.",
                "Assigned %(count)s drafts to %(user)s.",
                len(outcome.done),
            )
        else:
            done = ngettext(
                "Unassigned %(count)s draft.", "Unassigned %(count)s drafts.", len(outcome.done)
            )
    elif action == "reopen":
        outcome = bulk.reopen(request.user, selection)
        done = ngettext(
            "%(count)s draft is back in review.",
            "%(count)s drafts are back in review.",
            len(outcome.done),
        )
    else:
        messages.error(request, _("Unknown action %(action)s.") % {"action": repr(action)})
        return redirect(back)
    if outcome.done:
        assignee = outcome.done[0].assigned_to if action == "assign" else None
        messages.success(request, done % {"count": len(outcome.done), "user": assignee})
    if outcome.skipped:
        messages.warning(request, _skipped_report(outcome.skipped))
    return redirect(back)


def _skipped_report(skipped: list[tuple[Draft | int, str]], shown: int = 10) -> str:
    """The drafts a bulk action left as they were, each with the reason, the first few."""
    parts = []
    for draft, why in skipped[:shown]:
        if isinstance(draft, Draft):
            name = f"“{(draft.message.subject or _('(no subject)'))[:60]}”"
        else:
            name = _("draft %(id)s") % {"id": draft}
        parts.append(f"{name} ({why})")
    report = ngettext(
        "%(count)s draft was left as it was: %(drafts)s",
        "%(count)s drafts were left as they were: %(drafts)s",
        len(skipped),
    ) % {"count": len(skipped), "drafts": "; ".join(parts)}
    if len(skipped) > shown:
        report += " " + _("and %(count)s more.") % {"count": len(skipped) - shown}
    return report


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


@login_required
@require_POST
def retry_failed(request: HttpRequest) -> HttpResponse:
    """Queue every draft whose generation failed for the model again (e.g. after a fix)."""
    retried = sum(
        d.retry_generation(request.user)
        for d in drafts_for(request.user).filter(status=Draft.FAILED)
    )
    messages.success(
        request, _("%(count)s draft(s) queued for the model again.") % {"count": retried}
    )
    return redirect(reverse("queue") + "?tab=pending")


@supervisor_required
def stats_page(request: HttpRequest) -> HttpResponse:
    """Decisions over a date range per reviewer, intent, template and mailbox; or one as CSV."""
    dates = stats.DateRange.from_query(request.GET)
    if request.GET.get("format") == "csv":
        table = request.GET.get("table", "")
        if table not in stats.TABLES:
            raise Http404("No such table.")
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        filename = stats.csv_filename(table, dates)
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        stats.write_csv(response, table, dates)
        return response
    totals = stats.daily.totals(dates.start, dates.end)
    tables = stats.breakdowns(dates, totals)
    days = stats.trend(dates, totals)
    headings = stats.table_headings()
    titles = {
        "reviewer": _("Decisions per reviewer"),
        "intent": _("Decisions per intent"),
        "template": _("Decisions per template version"),
        "mailbox": _("Decisions per mailbox"),
    }
    sections = [
        {
            "name": name,
            "heading": headings[name],
            "title": titles[name],
            "rows": rows,
            "chart": charts.bar_chart(
                [(r.label, r.approved_unchanged, r.approved_edited, r.rejected) for r in rows],
                titles[name],
            ),
        }
        for name, rows in tables.items()
    ]
    trend_title = _("Decisions per day, %(start)s to %(end)s") % {
        "start": dates.start.isoformat(),
        "end": dates.end.isoformat(),
    }
    trend = [(d.day.isoformat(), d.approved_unchanged, d.approved_edited, d.rejected) for d in days]
    on_time_title = _("Replies within their reply target, per day, %(start)s to %(end)s") % {
        "start": dates.start.isoformat(),
        "end": dates.end.isoformat(),
    }
    on_time = [(d.day.isoformat(), d.on_time, d.late) for d in days]
    return render(
        request,
        "drafts/stats.html",
        {
            "dates": dates,
            "rows": tables["reviewer"],
            "sections": sections,
            "trend_chart": charts.trend_chart(trend, trend_title),
            "trend_total": sum(d.decided for d in days),
            "on_time_chart": charts.trend_chart(on_time, on_time_title, charts.TARGET_KINDS),
            "targeted_total": sum(d.on_time + d.late for d in days),
            "reasons": Draft.REJECT_REASONS,
            "deliveries": stats.deliveries(),
        },
    )

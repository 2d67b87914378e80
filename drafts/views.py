"""Review pages: the queue, a draft with its email, and the stats. Views stay thin."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from drafts import stats
from drafts.models import Draft

QUEUE_TABS = [
    ("review", "Awaiting review", [Draft.READY]),
    ("pending", "In progress", [Draft.QUEUED, Draft.GENERATING]),
    ("problems", "Failed", [Draft.FAILED, Draft.SEND_FAILED]),
    ("sent", "Approved & sent", [Draft.APPROVED, Draft.SENDING, Draft.SENT]),
    ("rejected", "Rejected", [Draft.REJECTED]),
]
PAGE_SIZE = 50


def _get_draft(draft_id: int) -> Draft:
    return get_object_or_404(
        Draft.objects.select_related("message__mailbox", "message__thread", "template"),
        pk=draft_id,
    )


@login_required
def queue(request: HttpRequest) -> HttpResponse:
    """Drafts by status, oldest first: the reviewer's work list."""
    tab = request.GET.get("tab", "review")
    tabs = {key: (label, statuses) for key, label, statuses in QUEUE_TABS}
    if tab not in tabs:
        tab = "review"
    counts = dict(Draft.objects.values_list("status").annotate(n=Count("id")))
    drafts = (
        Draft.objects.filter(status__in=tabs[tab][1])
        .select_related("message")
        .only(
            "id",
            "status",
            "intent",
            "confidence",
            "flags",
            "error",
            "send_error",
            "created_at",
            "message__subject",
            "message__from_name",
            "message__from_address",
            "message__date",
        )
        .order_by("created_at", "id")[:PAGE_SIZE]
    )
    tab_list = [
        {"key": key, "label": label, "count": sum(counts.get(s, 0) for s in statuses)}
        for key, label, statuses in QUEUE_TABS
    ]
    context = {
        "drafts": drafts,
        "tab": tab,
        "tabs": tab_list,
        "failed_count": counts.get(Draft.FAILED, 0),
    }
    return render(request, "drafts/queue.html", context)


@login_required
def draft_detail(request: HttpRequest, draft_id: int) -> HttpResponse:
    """One draft beside its email, with the actions a reviewer can take."""
    draft = _get_draft(draft_id)
    thread = []
    if draft.message.thread_id:
        thread = draft.message.thread.messages.exclude(pk=draft.message_id).order_by("date", "id")
    next_draft = (
        Draft.objects.filter(status=Draft.READY, created_at__gte=draft.created_at)
        .exclude(pk=draft.pk)
        .order_by("created_at", "id")
        .values_list("id", flat=True)
        .first()
    )
    return render(
        request,
        "drafts/draft_detail.html",
        {
            "draft": draft,
            "message": draft.message,
            "thread": thread,
            "events": draft.events.select_related("user"),
            "reject_reasons": Draft.REJECT_REASONS,
            "next_draft": next_draft,
            "remote_images": request.GET.get("remote") == "1",
        },
    )


@login_required
@require_POST
def draft_action(request: HttpRequest, draft_id: int) -> HttpResponse:
    """Save edit, approve, reject or retry; each is a guarded state change."""
    draft = _get_draft(draft_id)
    action = request.POST.get("action", "")
    text = request.POST.get("reply_text", draft.reply_text).replace("\r\n", "\n").strip()
    done_url = reverse("draft", args=[draft.pk])
    if action in ("save", "approve") and not text:
        messages.error(request, "The reply is empty.")
        return redirect(done_url)
    if action == "save":
        ok = draft.save_edit(request.user, text)
        notice = "Edit saved."
    elif action == "approve":
        ok = draft.approve(request.user, text)
        notice = "Approved. The reply is being sent."
    elif action == "reject":
        reason = request.POST.get("reason", "")
        if reason not in dict(Draft.REJECT_REASONS):
            messages.error(request, "Choose a reason to reject the draft.")
            return redirect(done_url)
        ok = draft.reject(request.user, reason, request.POST.get("note", "").strip())
        notice = "Draft rejected."
    elif action == "retry":
        ok = draft.retry_generation(request.user)
        notice = "Queued for the model again."
    elif action == "retry_send":
        ok = draft.retry_send(request.user)
        notice = "Queued for sending again."
    else:
        messages.error(request, f"Unknown action {action!r}.")
        return redirect(done_url)
    if ok:
        messages.success(request, notice)
        next_id = request.POST.get("next", "")
        if action in ("approve", "reject") and next_id.isdigit():
            return redirect(reverse("draft", args=[int(next_id)]))
    else:
        messages.error(
            request,
            f"Nothing changed: this draft is now “{draft.get_status_display()}”. "
            "Someone else may have acted on it first.",
        )
    return redirect(done_url)


@login_required
@require_POST
def retry_failed(request: HttpRequest) -> HttpResponse:
    """Queue every draft whose generation failed for the model again (e.g. after a fix)."""
    retried = sum(
        d.retry_generation(request.user) for d in Draft.objects.filter(status=Draft.FAILED)
    )
    messages.success(request, f"{retried} draft(s) queued for the model again.")
    return redirect(reverse("queue") + "?tab=pending")


@login_required
def stats_page(request: HttpRequest) -> HttpResponse:
    """Per-reviewer decisions and time to decision."""
    return render(request, "drafts/stats.html", {"rows": stats.per_reviewer()})

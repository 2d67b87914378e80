"""Review pages: the queue (with its bulk actions) and the stats; the draft page is in
drafts/draft_views.py. Views stay thin."""

from __future__ import annotations

from collections import Counter

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, F, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_POST

from drafts import bulk, charts, search, stats
from drafts.access import drafts_for, mailboxes_for, reviewers_of, supervisor_required
from drafts.models import INTENT_CHOICES, BlockedSender, Draft
from inference.drafting import INTENTS

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

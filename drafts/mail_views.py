"""Pages about mail itself: a message, its HTML, its attachments, and uploading mail."""

from __future__ import annotations

import tempfile
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.utils.translation import pgettext_lazy

from drafts import mailparse
from drafts.access import attachments_for, mailboxes_for, messages_for, sees_all_mailboxes
from drafts.ingest import ImportReport, import_paths
from drafts.models import Mailbox, Message

# What the email's HTML may load inside its sandboxed frame: nothing, unless the reviewer
# asked for remote images.
BODY_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src {img}; sandbox"

# Why a message got no draft (Message.auto_kind), as the "Not drafted" page shows it.
NO_DRAFT_REASONS = {
    "auto-reply": pgettext_lazy("why no draft", "auto-reply"),
    "bounce": pgettext_lazy("why no draft", "bounce"),
    "bulk": pgettext_lazy("why no draft", "bulk"),
    "list": pgettext_lazy("why no draft", "list"),
    "oversize": pgettext_lazy("why no draft", "oversize"),
    "rate-limited": pgettext_lazy("why no draft", "rate-limited"),
    "blocked": pgettext_lazy("why no draft", "blocked sender"),
    "own-reply": pgettext_lazy("why no draft", "our own reply"),
}
# As much of an uploaded file as the importer reads to decide whether it is mail.
MAIL_HEAD_BYTES = 4096


@login_required
def message_detail(request: HttpRequest, message_id: int) -> HttpResponse:
    """One message as received: headers, text, HTML, attachments, defects, its draft."""
    message = get_object_or_404(
        messages_for(request.user).select_related("mailbox", "thread"), pk=message_id
    )
    return render(
        request,
        "drafts/message_detail.html",
        {"message": message, "draft": getattr(message, "draft", None)},
    )


@login_required
def not_drafted(request: HttpRequest) -> HttpResponse:
    """Messages stored without a draft (auto-replies, bulk, bounces, oversize, rate-limited)."""
    stored = (
        messages_for(request.user)
        .filter(direction=Message.INBOUND)
        .exclude(auto_kind="")
        .only("id", "subject", "from_name", "from_address", "date", "auto_kind", "defects")
        .order_by("-date", "-id")
    )
    page = Paginator(stored, 50).get_page(request.GET.get("page"))
    for message in page:
        message.reason = NO_DRAFT_REASONS.get(message.auto_kind, message.auto_kind)
    return render(request, "drafts/not_drafted.html", {"page": page})


@login_required
def message_body(request: HttpRequest, message_id: int) -> HttpResponse:
    """The message's sanitized HTML, for a sandboxed iframe.

    With ?remote=1 remote images are allowed (the HTML is sanitized again from the raw
    message, keeping http/https images only); nothing else is ever loaded.
    """
    message = get_object_or_404(messages_for(request.user), pk=message_id)
    remote = request.GET.get("remote") == "1"
    html = message.html
    if remote:
        limit = settings.REPLYHUB_MAX_MESSAGE_BYTES
        parsed = mailparse.parse(bytes(message.raw), max_bytes=limit, max_attachment_bytes=0)
        html = parsed.html_with_images
    response = HttpResponse(html, content_type="text/html; charset=utf-8")
    response["Content-Security-Policy"] = BODY_CSP.format(
        img="https: http:" if remote else "'none'"
    )
    response["X-Frame-Options"] = "SAMEORIGIN"
    response["X-Content-Type-Options"] = "nosniff"
    response["Referrer-Policy"] = "no-referrer"
    return response


@login_required
def attachment_download(request: HttpRequest, attachment_id: int) -> HttpResponse:
    """An attachment, only ever as a download: never rendered by the browser."""
    attachment = get_object_or_404(attachments_for(request.user), pk=attachment_id)
    if not attachment.stored:
        return HttpResponse(
            _("This attachment was over the size limit; only its name and size were kept."),
            status=410,
            content_type="text/plain; charset=utf-8",
        )
    return as_download(bytes(attachment.data), attachment.filename)


def as_download(data: bytes, filename: str) -> HttpResponse:
    """A file the browser saves and never renders or runs, whatever it holds."""
    response = HttpResponse(data, content_type="application/octet-stream")
    response["Content-Disposition"] = content_disposition_header(True, filename)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


@login_required
def upload(request: HttpRequest) -> HttpResponse:
    """Import .eml and mbox files chosen in the browser, with the same rules as import_mail."""
    if sees_all_mailboxes(request.user):
        Mailbox.default()  # a fresh install has none yet
    allowed = mailboxes_for(request.user)
    if request.method != "POST":
        return render(request, "drafts/upload.html", {"mailboxes": allowed})
    files = request.FILES.getlist("files")
    if not files:
        messages.error(request, _("Choose one or more .eml or mbox files."))
        return redirect("upload")
    mailbox = allowed.filter(pk=request.POST.get("mailbox") or 0).first() or allowed.first()
    if mailbox is None:
        messages.error(request, _("You review no mailbox; ask an admin to assign you one."))
        return redirect("upload")
    with tempfile.TemporaryDirectory(prefix="replyhub-upload-") as folder:
        names: dict[str, str] = {}  # where we saved each file -> the name the user chose
        for number, upload_file in enumerate(files):
            path = Path(folder) / f"{number:03d}.upload"
            with path.open("wb") as out:
                for chunk in upload_file.chunks():
                    out.write(chunk)
            names[str(path)] = Path(upload_file.name).name
        # The importer checks this too, but says it in English for the command line.
        for path, name in names.items():
            with Path(path).open("rb") as handle:
                if not mailparse.looks_like_mail(handle.read(MAIL_HEAD_BYTES)):
                    error = _(
                        "%(file)s: not an email message or mbox file "
                        "(it does not start with mail headers)"
                    ) % {"file": name}
                    messages.error(request, _("Nothing imported: %(error)s") % {"error": error})
                    return redirect("upload")
        try:
            report = import_paths([Path(p) for p in names], mailbox)
        except mailparse.NotMailError as exc:
            error = str(exc)
            for path, name in names.items():
                error = error.replace(path, name)
            messages.error(request, _("Nothing imported: %(error)s") % {"error": error})
            return redirect("upload")
    messages.success(
        request,
        _("Imported into %(mailbox)s: %(report)s.")
        % {"mailbox": mailbox, "report": report_text(report)},
    )
    return redirect(reverse("queue") + "?tab=pending")


def report_text(report: ImportReport) -> str:
    """What an upload imported, in the user's language (str(report) is the command line's)."""
    counts = {
        "added": report.added,
        "duplicates": report.duplicates,
        "drafts": report.drafts,
        "no_draft": report.no_draft,
        "not_mail": report.not_mail,
    }
    if report.not_mail:
        return (
            _(
                "%(added)s new message(s), %(duplicates)s already stored, %(drafts)s queued "
                "for a draft, %(no_draft)s stored without a draft, %(not_mail)s piece(s) of "
                "mbox skipped as not mail"
            )
            % counts
        )
    return (
        _(
            "%(added)s new message(s), %(duplicates)s already stored, %(drafts)s queued "
            "for a draft, %(no_draft)s stored without a draft"
        )
        % counts
    )

"""What a reviewer does on the draft page: the form's `action` names one of ACTIONS, a small
function that changes the draft through its model method (each a guarded state change) and
says how it went. The view around them keeps what every action shares: the reply in the
editor is never lost (kept for the editor, or shown beside a newer version), and a refusal
says why in the reviewer's words.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST

from drafts import copies, reply_files
from drafts.access import reviewers_of
from drafts.context_processors import UNDO_OFFERS
from drafts.draft_views import get_draft, kept_cc_key, kept_key, note_key, unsaved_key
from drafts.models import BlockedSender, Draft, PromptTemplate
from drafts.sending import HeaderInjectionError
from inference.replycheck import placeholders


@dataclass
class Posted:
    """One posted action: the draft, the reply in the editor (the draft's own when none was
    posted) and the version the page was made on (None when not posted)."""

    request: HttpRequest
    draft: Draft
    text: str
    version: int | None

    @property
    def user(self) -> object:
        return self.request.user

    def back(self, anchor: str = "") -> HttpResponse:
        """Back to the draft page (at ``anchor``)."""
        return redirect(reverse("draft", args=[self.draft.pk]) + anchor)

    def keep_editing(self) -> None:
        """Keep the reply and the copies as posted for the next page's editor: not lost."""
        post, session = self.request.POST, self.request.session
        if "reply_text" in post:
            session[kept_key(self.draft.pk)] = self.text
        if "cc" in post:
            session[kept_cc_key(self.draft.pk)] = post["cc"][:5000]

    def refuse(self, message: str, anchor: str = "", keep_editing: bool = False) -> HttpResponse:
        """Back to the draft page with ``message``; ``keep_editing``: with the reply and the
        copies as they were posted (``keep_editing()``)."""
        messages.error(self.request, message)
        if keep_editing:
            self.keep_editing()
        return self.back(anchor)


# An action answers (changed, what to say) for the shared ending, or a page of its own.
Outcome = tuple[bool, str] | HttpResponse


def _copies(posted: Posted) -> list[str] | HttpResponse | None:
    """The copies (Cc) as posted beside the reply; None when the form sent none; a refusal
    (the reply and the list kept for the editor) when an entry is not an address."""
    if "cc" not in posted.request.POST:
        return None
    try:
        return copies.parse(posted.request.POST["cc"], posted.draft.message.reply_address)
    except copies.CopiesRefused as exc:
        return posted.refuse(str(exc), keep_editing=True)


def _save(posted: Posted) -> Outcome:
    cc = _copies(posted)
    if isinstance(cc, HttpResponse):
        return cc
    return posted.draft.save_edit(posted.user, posted.text, posted.version, cc), _("Edit saved.")


def _approve(posted: Posted) -> Outcome:
    found = placeholders(posted.text)
    if found and not posted.request.POST.get("placeholders_ok"):
        return posted.refuse(
            _(
                "Not sent: the reply still has placeholder text (%(found)s). Fill it in, "
                "or tick “Send the brackets as written” if they belong in the reply."
            )
            % {"found": ", ".join(found)},
            keep_editing=True,
        )
    cc = _copies(posted)
    if isinstance(cc, HttpResponse):
        return cc
    draft = posted.draft
    try:
        ok = draft.approve(posted.user, posted.text, posted.version, cc)
    except HeaderInjectionError as exc:
        return posted.refuse(
            _("This email cannot be answered safely (%(problem)s); nothing was approved.")
            % {"problem": exc}
        )
    if ok and (until := draft.delivery.undo_until) and until > timezone.now():
        _offer_undo(posted.request, draft, until)
        return True, ""  # the undo banner says it, with the time
    return ok, _("Approved. The reply is being sent.")


def _reject(posted: Posted) -> Outcome:
    post, draft = posted.request.POST, posted.draft
    reason = post.get("reason", "")
    if reason not in dict(Draft.REJECT_REASONS):
        return posted.refuse(_("Choose a reason to reject the draft."))
    ok = draft.reject(posted.user, reason, post.get("note", "").strip(), posted.version)
    if ok and post.get("block_sender") == "1" and BlockedSender.block(draft, posted.user):
        return True, _(
            "Draft rejected, and %(address)s is blocked: their next emails get no draft."
        ) % {"address": draft.message.from_address}
    return ok, _("Draft rejected.")


def _retry(posted: Posted) -> Outcome:
    return posted.draft.retry_generation(posted.user), _("Queued for the model again.")


def _regenerate(posted: Posted) -> Outcome:
    post = posted.request.POST
    try:
        temperature = float(post["temperature"]) if post.get("temperature") else None
    except ValueError:
        temperature = None
    if temperature is not None and not 0 <= temperature <= 2:
        return posted.refuse(_("The temperature must be between 0 and 2."))
    template = PromptTemplate.objects.filter(pk=post.get("template") or 0).first()
    instruction = post.get("instruction", "").strip()
    if len(instruction) > Draft.INSTRUCTION_MAX:
        return posted.refuse(
            _("What should change is limited to %(max)s characters; this was %(n)s.")
            % {"max": Draft.INSTRUCTION_MAX, "n": len(instruction)},
            keep_editing=True,
        )
    # The model rewrites what is in the editor, unsaved edits included.
    edited = posted.text if "reply_text" in post else None
    ok = posted.draft.regenerate(posted.user, temperature, template, instruction, edited)
    return ok, _("Queued for the model again.")


def _reassign(posted: Posted) -> Outcome:
    mailbox = posted.draft.message.mailbox
    to = reviewers_of(mailbox).filter(pk=posted.request.POST.get("to") or 0).first()
    ok = posted.draft.reassign(posted.user, to)
    return ok, _("Assigned to %(user)s.") % {"user": to} if to else _("Unassigned.")


def _files_changed(posted: Posted, ok: bool, notice: str) -> HttpResponse:
    """Back to the reply's files, saying what happened to them."""
    if ok:
        messages.success(posted.request, notice)
    else:
        posted.draft.refresh_from_db()
        messages.error(posted.request, _refusal(posted.draft, posted.user, posted.version))
    return posted.back("#reply-files")


def _attach(posted: Posted) -> Outcome:
    try:
        files = reply_files.read_uploads(posted.draft, posted.request.FILES.getlist("files"))
    except reply_files.FileRefused as exc:
        return posted.refuse(str(exc), "#reply-files")
    ok = posted.draft.attach(posted.user, files, posted.version)
    notice = ngettext(
        "Attached %(count)s file to the reply.",
        "Attached %(count)s files to the reply.",
        len(files),
    ) % {"count": len(files)}
    return _files_changed(posted, ok, notice)


def _detach(posted: Posted) -> Outcome:
    file_id = posted.request.POST.get("file", "")
    ok = file_id.isdigit() and posted.draft.detach(posted.user, int(file_id), posted.version)
    return _files_changed(posted, ok, _("The file is taken off the reply."))


def _note(posted: Posted) -> Outcome:
    note = posted.request.POST.get("note", "").strip()
    if not note:
        return posted.refuse(_("The note is empty."), "#notes")
    if len(note) > Draft.NOTE_MAX:
        posted.request.session[note_key(posted.draft.pk)] = note  # back in its box, not lost
        return posted.refuse(
            _("The note is %(length)s characters long; at most %(max)s fit.")
            % {"length": len(note), "max": Draft.NOTE_MAX},
            "#notes",
        )
    posted.draft.add_note(posted.user, note)
    messages.success(posted.request, _("Note added for the team."))
    return posted.back("#notes")


def _reopen(posted: Posted) -> Outcome:
    ok = posted.draft.reopen(posted.user)
    return ok, _("The rejection is taken back: the draft awaits review, held for you.")


def _undo(posted: Posted) -> Outcome:
    delivery = posted.draft.delivery
    ok = bool(delivery) and delivery.stop(posted.user)
    _withdraw_undo(posted.request, posted.draft.pk)
    if not ok:
        posted.draft.refresh_from_db()
        return posted.refuse(_too_late(posted.draft))
    return True, _("Not sent: the approval is undone. The draft is back in review, held for you.")


def _retry_send(posted: Posted) -> Outcome:
    delivery = posted.draft.delivery
    return bool(delivery) and delivery.send_again(posted.user), _("Queued for sending again.")


def _confirm_sent(posted: Posted) -> Outcome:
    delivery = posted.draft.delivery
    ok = bool(delivery) and delivery.confirm_delivered(posted.user)
    return ok, _("Marked as delivered; nothing more will be sent.")


ACTIONS: dict[str, Callable[[Posted], Outcome]] = {
    "save": _save,
    "approve": _approve,
    "reject": _reject,
    "retry": _retry,
    "regenerate": _regenerate,
    "reassign": _reassign,
    "attach": _attach,
    "detach": _detach,
    "note": _note,
    "reopen": _reopen,
    "undo": _undo,
    "retry_send": _retry_send,
    "confirm_sent": _confirm_sent,
}


@login_required
@require_POST
def draft_action(request: HttpRequest, draft_id: int) -> HttpResponse:
    """Save edit, approve, reject, regenerate… (ACTIONS); each is a guarded state change."""
    draft = get_draft(request, draft_id)
    action = request.POST.get("action", "")
    text = request.POST.get("reply_text", draft.reply_text).replace("\r\n", "\n").strip()
    version = int(request.POST["version"]) if request.POST.get("version", "").isdigit() else None
    posted = Posted(request, draft, text, version)
    handler = ACTIONS.get(action)
    if handler is None:
        return posted.refuse(_("Unknown action %(action)s.") % {"action": repr(action)})
    if action in ("save", "approve") and not text:
        return posted.refuse(_("The reply is empty."))
    if action in ("note", "attach", "detach") and draft.status == Draft.READY:
        posted.keep_editing()  # these reload the page: what is being edited comes back
    outcome = handler(posted)
    if isinstance(outcome, HttpResponse):
        return outcome
    ok, notice = outcome
    if ok:
        if notice:
            messages.success(request, notice)
        request.session.pop(unsaved_key(draft.pk), None)
        next_id = request.POST.get("next", "")
        if action in ("approve", "reject") and next_id.isdigit():
            return redirect(reverse("draft", args=[int(next_id)]))
    else:
        messages.error(request, _refusal(draft, request.user, version))
        if action in ("save", "approve"):
            # Never lost, never written over the newer text: shown beside it instead.
            request.session[unsaved_key(draft.pk)] = text
    return posted.back()


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

"""Acting on many drafts of the queue at once: reject them, give them to a reviewer, or
take rejections back.

Each draft goes through the same guarded change as on its own page (Draft.reject,
Draft.reassign, Draft.reopen), with its own entry in the history: a draft someone else has
open, that changed since the list was shown, or that is no longer where the list saw it, is
left as it is and reported with the reason, never overwritten. There is no bulk approval:
a reply is sent only after a person has read it on its own page.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.utils import timezone
from django.utils.translation import gettext as _

from drafts.access import drafts_for, reviewers_of
from drafts.models import Draft

MAX_DRAFTS = 200  # four pages of the queue; a request names each draft it changes


class SelectionError(ValueError):
    """The selection cannot be read; the message names the value at fault."""


@dataclass
class Outcome:
    """What a bulk action did: the drafts changed, and the others with the reason."""

    done: list[Draft] = field(default_factory=list)
    skipped: list[tuple[Draft | int, str]] = field(default_factory=list)


def parse_selection(values: list[str]) -> dict[int, int | None]:
    """The queue's check boxes, "id:version" each, as {draft id: version it was listed at}.

    A value without a version ("17") acts on the draft as it is now.
    """
    if not values:
        raise SelectionError(_("Select at least one draft."))
    if len(values) > MAX_DRAFTS:
        raise SelectionError(
            _("Select at most %(max)s drafts at once (%(count)s were selected).")
            % {"max": MAX_DRAFTS, "count": len(values)}
        )
    selection: dict[int, int | None] = {}
    for value in values:
        draft_id, _sep, version = value.partition(":")
        if not draft_id.isdigit() or (version and not version.isdigit()):
            raise SelectionError(_("“%(value)s” is not a draft of the list.") % {"value": value})
        selection[int(draft_id)] = int(version) if version else None
    return selection


def _selected(user: object, selection: dict[int, int | None], outcome: Outcome) -> list[Draft]:
    """The selected drafts the user may see, in the order they were selected."""
    found = drafts_for(user).select_related("message", "mailbox").in_bulk(list(selection))
    for draft_id in selection:
        if draft_id not in found:  # deleted (erasure) or another team's: the same to them
            outcome.skipped.append((draft_id, _("no longer exists")))
    return [found[draft_id] for draft_id in selection if draft_id in found]


def why_not(draft: Draft, user: object, version: int | None, wanted: list[str]) -> str:
    """Why a guarded change left ``draft`` (read again after it) as it was."""
    holder = draft.held_by()
    if holder and holder != user:
        return _("%(holder)s has it open until %(until)s") % {
            "holder": holder,
            "until": f"{timezone.localtime(draft.claimed_until):%H:%M}",
        }
    if draft.status not in wanted:
        return _("it is now “%(status)s”") % {"status": draft.get_status_display()}
    if version is not None and draft.version != version:
        return _("someone changed it after the list was shown")
    if draft.status == Draft.REJECTED and draft.message.redacted_at:
        return _("the retention period has removed its email")
    return _("someone else acted on it first")


def reject(user: object, selection: dict[int, int | None], reason: str, note: str) -> Outcome:
    """Reject each selected draft awaiting review, unchanged since it was listed."""
    outcome = Outcome()
    for draft in _selected(user, selection, outcome):
        version = selection[draft.pk]
        if draft.reject(user, reason, note, version):
            outcome.done.append(draft)
        else:
            outcome.skipped.append((draft, why_not(draft, user, version, [Draft.READY])))
    return outcome


ASSIGNABLE = [Draft.QUEUED, Draft.GENERATING, Draft.READY, Draft.FAILED]


def assign(user: object, selection: dict[int, int | None], to_id: int | None) -> Outcome:
    """Give each selected draft to the reviewer ``to_id`` (None: to nobody), where that
    person answers the draft's mailbox."""
    outcome = Outcome()
    to = get_user_model().objects.filter(pk=to_id).first() if to_id else None
    allowed: dict[int, bool] = {}
    for draft in _selected(user, selection, outcome):
        if to is not None:
            if draft.mailbox_id not in allowed:
                allowed[draft.mailbox_id] = reviewers_of(draft.mailbox).filter(pk=to.pk).exists()
            if not allowed[draft.mailbox_id]:
                outcome.skipped.append(
                    (
                        draft,
                        _("%(user)s does not answer the mailbox %(mailbox)s")
                        % {"user": to, "mailbox": draft.mailbox},
                    )
                )
                continue
        if draft.reassign(user, to):
            outcome.done.append(draft)
        else:
            outcome.skipped.append((draft, why_not(draft, user, None, ASSIGNABLE)))
    return outcome


def reopen(user: object, selection: dict[int, int | None]) -> Outcome:
    """Take back the rejection of each selected rejected draft: it awaits review again."""
    outcome = Outcome()
    for draft in _selected(user, selection, outcome):
        if draft.reopen(user, hold=False):
            outcome.done.append(draft)
        else:
            outcome.skipped.append((draft, why_not(draft, user, None, [Draft.REJECTED])))
    return outcome

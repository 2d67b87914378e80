"""Sharing new drafts out among a mailbox's reviewers (Mailbox.auto_assign).

Each draft that has just become ready, and that nobody was given yet, goes to the reviewer
of its mailbox with the fewest drafts awaiting review there (ties: the one whose name comes
first); reviewers marked away and inactive accounts are left out, and supervisors, who
see every mailbox, are not reviewers of it. The assignment is a Draft.reassign by the
system, so it is in the draft's history and visible to the API like any other.
"""

from __future__ import annotations

import logging
from collections import Counter

from django.db.models import Count

from drafts.models import Draft

log = logging.getLogger(__name__)


def share_out(draft_ids: list[int]) -> dict[int, str]:
    """Assign those of ``draft_ids`` that are ready, unassigned and in a mailbox that shares
    drafts out; {draft id: username} of the ones assigned."""
    drafts = (
        Draft.objects.filter(
            pk__in=draft_ids,
            status=Draft.READY,
            assigned_to__isnull=True,
            mailbox__auto_assign=True,
        )
        .select_related("mailbox")
        .order_by("created_at", "id")
    )
    by_mailbox: dict[int, list[Draft]] = {}
    for draft in drafts:
        by_mailbox.setdefault(draft.mailbox_id, []).append(draft)
    assigned: dict[int, str] = {}
    for mailbox_drafts in by_mailbox.values():
        mailbox = mailbox_drafts[0].mailbox
        reviewers = list(
            mailbox.reviewers.filter(is_active=True)
            .exclude(profile__away=True)
            .order_by("username")
        )
        if not reviewers:
            continue
        load = Counter(
            dict(
                Draft.objects.filter(mailbox=mailbox, status=Draft.READY, assigned_to__in=reviewers)
                .values_list("assigned_to")
                .annotate(n=Count("id"))
            )
        )
        for draft in mailbox_drafts:
            reviewer = min(reviewers, key=lambda user: (load[user.pk], user.username))
            if draft.reassign(None, reviewer):
                load[reviewer.pk] += 1
                assigned[draft.pk] = reviewer.username
    if assigned:
        log.info("Shared out %s", assigned)
    return assigned

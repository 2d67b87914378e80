"""Template context every page needs: the user's role, for the navigation, and the Undo
banner of replies they approved whose undo window is still open."""

from __future__ import annotations

from datetime import datetime

from django.http import HttpRequest
from django.utils import timezone

from drafts.models import StaffProfile


def role(request: HttpRequest) -> dict[str, str]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"role": ""}
    return {"role": StaffProfile.role_of(user)}


# Session key: the user's approvals still in their undo window, oldest first, as
# {"draft": id, "until": ISO time, "subject": …} (drafts.draft_views adds and withdraws them).
UNDO_OFFERS = "undo-offers"


def undo(request: HttpRequest) -> dict[str, list]:
    """The Undo banner's approvals; those whose window has closed leave the session."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or UNDO_OFFERS not in request.session:
        return {"undo_offers": []}
    now = timezone.now()
    offers = request.session[UNDO_OFFERS]
    live = [o for o in offers if datetime.fromisoformat(o["until"]) > now]
    if len(live) != len(offers):
        request.session[UNDO_OFFERS] = live
    return {"undo_offers": [{**o, "until": datetime.fromisoformat(o["until"])} for o in live]}

"""Template context every page needs: the user's role, for the navigation."""

from __future__ import annotations

from django.http import HttpRequest

from drafts.models import StaffProfile


def role(request: HttpRequest) -> dict[str, str]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"role": ""}
    return {"role": StaffProfile.role_of(user)}

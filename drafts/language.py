"""The top bar's language switch."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from drafts.middleware import SESSION_LANGUAGE_KEY
from drafts.models import StaffProfile


@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    """Keep the chosen language on the user's profile (and in the session), then go back.

    Signed-in users keep it across logins because it lives on their profile, which is
    created as a reviewer's if they have none. Anonymous visitors (the login page) keep it
    for the session. Only a same-site ``next`` is followed, so the form cannot be used to
    send someone elsewhere.
    """
    language = request.POST.get("language", "")
    if language in dict(settings.LANGUAGES):
        request.session[SESSION_LANGUAGE_KEY] = language
        if request.user.is_authenticated:
            StaffProfile.objects.update_or_create(
                user=request.user,
                defaults={"language": language},
                create_defaults={"language": language, "role": StaffProfile.REVIEWER},
            )
    next_url = request.POST.get("next") or request.META.get("HTTP_REFERER", "")
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = reverse("queue")
    return redirect(next_url)

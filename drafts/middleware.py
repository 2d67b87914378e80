"""The interface language: the signed-in user's profile choice over the browser's."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import translation

from drafts.models import StaffProfile

# Where the top bar's language switch keeps an anonymous visitor's choice.
SESSION_LANGUAGE_KEY = "replyhub_language"


def chosen_language(request: HttpRequest) -> str | None:
    """The language the user picked: on their profile, else in this session; None if neither.

    A signed-in user without a profile falls back to the session, then to what
    LocaleMiddleware read from Accept-Language.
    """
    available = dict(settings.LANGUAGES)
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        language = StaffProfile.objects.filter(user=user).values_list("language", flat=True).first()
        if language in available:
            return language
    language = request.session.get(SESSION_LANGUAGE_KEY)
    return language if language in available else None


class UserLanguageMiddleware:
    """Activate the user's chosen language; goes after AuthenticationMiddleware.

    LocaleMiddleware (earlier in the chain) has already activated the browser's
    Accept-Language choice; this overrides it only when the user picked one themselves,
    and LocaleMiddleware's response half then labels the response with it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if language := chosen_language(request):
            translation.activate(language)
            request.LANGUAGE_CODE = translation.get_language()
        return self.get_response(request)

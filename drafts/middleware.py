"""The interface language: the signed-in user's profile choice over the browser's;
two-step verification set up before anything else, for those who must use it; and when
each signed-in session was last used."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import translation

from drafts import signed_in, two_factor
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


# Where a user who must set up two-step verification may still go: the setup page itself,
# logging out, the language switch, static files, and the API (its tokens are a credential
# of their own; the session cookie means nothing there).
SETUP_ALLOWED_PREFIXES = ("/api/",)


class TwoFactorSetupMiddleware:
    """Users whom REPLYHUB_REQUIRE_2FA obliges to use two-step verification, and who have
    not set it up, reach nothing but the setup page until they have (the Django admin
    included); goes after AuthenticationMiddleware.

    With REPLYHUB_REQUIRE_2FA=none (the default) it costs no query.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if (
            settings.REPLYHUB_REQUIRE_2FA != "none"
            and request.user.is_authenticated
            and not self.allowed(request.path_info)
            and two_factor.must_set_up(request.user)
        ):
            setup = reverse("account_security")
            if request.method in ("GET", "HEAD"):
                setup += "?" + urlencode({"next": request.get_full_path()})
            return redirect(setup)
        return self.get_response(request)

    @staticmethod
    def allowed(path: str) -> bool:
        exact = {reverse(name) for name in ("account_security", "logout", "set_language")}
        prefixes = (f"/{settings.STATIC_URL.lstrip('/')}", *SETUP_ALLOWED_PREFIXES)
        return path in exact or path.startswith(prefixes) or path == "/favicon.ico"


class SignedInSessionMiddleware:
    """Notes the use of signed-in sessions for the Account security page (see
    drafts.signed_in; a query at most every few minutes per session); goes after
    AuthenticationMiddleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        signed_in.note_use(request)
        return self.get_response(request)

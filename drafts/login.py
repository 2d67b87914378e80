"""Logging in, with failed attempts limited per account and per client address."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.views import LoginView
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext as _


def _keys(request: HttpRequest) -> list[str]:
    username = request.POST.get("username", "").strip().casefold()
    return [
        f"login-failures:user:{username}",
        f"login-failures:addr:{request.META.get('REMOTE_ADDR')}",
    ]


class RateLimitedLoginView(LoginView):
    """Django's login, refused for a while after too many failures.

    REPLYHUB_LOGIN_ATTEMPTS failures for one username (or five times as many from one
    address, which may be an office behind NAT) lock it for REPLYHUB_LOGIN_LOCKOUT_MINUTES,
    counted from the last failure. The counters live in Django's cache (Redis when
    REDIS_URL is set, so every web process shares them).
    """

    def post(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        user_key, addr_key = _keys(request)
        limit = settings.REPLYHUB_LOGIN_ATTEMPTS
        if cache.get(user_key, 0) >= limit or cache.get(addr_key, 0) >= 5 * limit:
            form = self.get_form()
            form.add_error(
                None,
                _(
                    "Too many failed logins. Try again in %(minutes)s minutes, "
                    "or ask an admin to reset your password."
                )
                % {"minutes": settings.REPLYHUB_LOGIN_LOCKOUT_MINUTES},
            )
            return self.render_to_response(self.get_context_data(form=form), status=429)
        response = super().post(request, *args, **kwargs)
        timeout = settings.REPLYHUB_LOGIN_LOCKOUT_MINUTES * 60
        if request.user.is_authenticated:
            cache.delete(user_key)
        else:
            for key in (user_key, addr_key):
                cache.set(key, cache.get(key, 0) + 1, timeout)
        return response

"""Logging in: the password, then (for those who turned it on) a code from their
authenticator app, with failed attempts of both kinds limited per account and address.

After a correct password, a user with two-step verification is not logged in yet: the
session remembers who passed the password (for PENDING_SECONDS), and the code page logs
them in. Wrong codes count against the same lock as wrong passwords, so a stolen password
does not buy unlimited guesses at the six digits.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.views import LoginView
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.crypto import constant_time_compare
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from drafts import account_activity
from drafts.account_activity import AccountEvent
from drafts.client_address import client_address
from drafts.two_factor import TwoFactor, enabled_for, looks_like_totp, must_set_up, normalized

logger = logging.getLogger(__name__)

# Session key of a login waiting for its code: user id, backend, deadline, where to go.
PENDING = "two-factor-pending"
PENDING_SECONDS = 5 * 60


def _keys(request: HttpRequest, username: str) -> list[str]:
    return [
        f"login-failures:user:{username.strip().casefold()}",
        f"login-failures:addr:{client_address(request)}",
    ]


def locked_out(request: HttpRequest, username: str) -> bool:
    """Whether the account, or the client's address, has failed too often lately."""
    user_key, addr_key = _keys(request, username)
    limit = settings.REPLYHUB_LOGIN_ATTEMPTS
    return cache.get(user_key, 0) >= limit or cache.get(addr_key, 0) >= 5 * limit


def refused_by_lock(request: HttpRequest, username: str, user: object | None = None) -> bool:
    """Whether the lock refuses this try (see ``locked_out``); a refused try goes into the
    account's activity (``user``: the account, else the one ``username`` names)."""
    if not locked_out(request, username):
        return False
    user = user or account_activity.account_named(username)
    account_activity.note(request, AccountEvent.LOCKED_OUT, user)
    return True


def count_failure(
    request: HttpRequest,
    username: str,
    kind: str = AccountEvent.WRONG_PASSWORD,
    user: object | None = None,
) -> None:
    """A wrong password or code (``kind``): one more against the account and the address,
    and an event in the account's activity (``user``: the account, else the one
    ``username`` names; a name that is no account gets an event without one)."""
    timeout = settings.REPLYHUB_LOGIN_LOCKOUT_MINUTES * 60
    for key in _keys(request, username):
        cache.set(key, cache.get(key, 0) + 1, timeout)
    account_activity.note(request, kind, user or account_activity.account_named(username))


def forget_failures(request: HttpRequest, username: str) -> None:
    """A completed login clears the account's count (not the address's)."""
    cache.delete(_keys(request, username)[0])


def locked_out_message() -> str:
    return _(
        "Too many failed logins. Try again in %(minutes)s minutes, "
        "or ask an admin to reset your password."
    ) % {"minutes": settings.REPLYHUB_LOGIN_LOCKOUT_MINUTES}


class RateLimitedLoginView(LoginView):
    """Django's login, refused for a while after too many failures, and stopping halfway
    for users with two-step verification.

    REPLYHUB_LOGIN_ATTEMPTS failures for one username (or five times as many from one
    address, which may be an office behind NAT; behind nginx, the client's: see
    drafts/client_address.py) lock it for REPLYHUB_LOGIN_LOCKOUT_MINUTES, counted from the
    last failure. The counters live in Django's cache (Redis when REDIS_URL is set, else a
    database table), which every web process shares.
    """

    def post(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        if refused_by_lock(request, request.POST.get("username", "")):
            form = self.get_form()
            form.add_error(None, locked_out_message())
            return self.render_to_response(self.get_context_data(form=form), status=429)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        count_failure(self.request, self.request.POST.get("username", ""))
        return super().form_invalid(form)

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        user = form.get_user()
        if enabled_for(user):
            # Neither a success nor a failure yet: the account's count stays as it is
            # until the code decides.
            start_pending_login(self.request, user, self.get_success_url())
            return redirect("login_code")
        forget_failures(self.request, user.get_username())
        response = super().form_valid(form)
        if must_set_up(user):
            query = urlencode({"next": self.get_success_url()})
            return redirect(f"{reverse('account_security')}?{query}")
        return response


def start_pending_login(request: HttpRequest, user: object, next_url: str) -> None:
    """Remember, in this session, a user who gave the right password and owes a code."""
    request.session[PENDING] = {
        "user": user.pk,
        "backend": user.backend,
        "until": time.time() + PENDING_SECONDS,
        "next": next_url,
        # A password changed meanwhile (by an admin, say) voids the half-done login.
        "auth_hash": user.get_session_auth_hash(),
    }


def pending_login(request: HttpRequest) -> tuple[object, dict] | None:
    """The user this session's half-done login is for, with its record; None if there is
    none or it has run out (then a message says so and it is forgotten)."""
    pending = request.session.get(PENDING)
    if not pending:
        return None
    user = get_user_model().objects.filter(pk=pending["user"], is_active=True).first()
    if time.time() > pending["until"]:
        messages.error(
            request,
            _("The code was not entered within %(minutes)s minutes. Log in again.")
            % {"minutes": PENDING_SECONDS // 60},
        )
        user = None
    elif user is not None and not constant_time_compare(
        user.get_session_auth_hash(), pending["auth_hash"]
    ):
        user = None
    if user is None:
        del request.session[PENDING]
        return None
    return user, pending


@sensitive_post_parameters("code")
@csrf_protect
@never_cache
@require_http_methods(["GET", "POST"])
def login_code(request: HttpRequest) -> HttpResponse:
    """The second step: a code from the authenticator app, or a recovery code."""
    found = pending_login(request)
    if found is None:
        return redirect("login")
    user, pending = found
    two_factor = TwoFactor.objects.filter(user=user, confirmed_at__isnull=False).first()
    if two_factor is None:  # reset by an admin meanwhile: the password alone decides again
        del request.session[PENDING]
        return redirect(f"{reverse('login')}?{urlencode({'next': pending['next']})}")
    error, status = "", 200
    if request.method == "POST":
        username = user.get_username()
        code = request.POST.get("code", "")
        if refused_by_lock(request, username, user):
            error, status = locked_out_message(), 429
        elif looks_like_totp(normalized(code)) and not two_factor.readable:
            # Not the person's mistake: no failure counted.
            logger.error("%s: the authenticator secret cannot be read with SECRET_KEY", username)
            error = _(
                "Codes from your app cannot be checked on this server any more (its secret "
                "key was changed). Use one of your recovery codes, or ask an admin to reset "
                "your two-step verification."
            )
        elif two_factor.accepts(code):
            del request.session[PENDING]
            login(request, user, backend=pending["backend"])
            forget_failures(request, username)
            if not looks_like_totp(normalized(code)):
                account_activity.note(request, AccountEvent.RECOVERY_CODE_USED, user)
            return redirect(pending["next"])
        else:
            count_failure(request, username, AccountEvent.WRONG_CODE, user)
            error = _(
                "That code is not right. Enter the 6 digits your app shows now, "
                "or one of your recovery codes."
            )
    return render(request, "registration/login_code.html", {"error": error}, status=status)


def admin_login(request: HttpRequest) -> HttpResponse:
    """The Django admin's login page, which would check passwords without the lock and
    without the code: it only sends people to ours, which comes back to the admin."""
    next_url = request.GET.get("next") or reverse("admin:index")
    return redirect(f"{reverse('login')}?{urlencode({'next': next_url})}")

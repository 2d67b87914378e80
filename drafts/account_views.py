"""The "Account security" page: turning two-step verification on and off, recovery codes,
where the user is signed in (any other session can be signed out from here), and changing
the password.

Turning it on shows a QR code (and the secret, for typing in) and takes effect only once
the user has typed a code from their app, which proves the app holds the secret. Recovery
codes are shown once, in the answer to the form that made them, as new API tokens are:
only their hashes are kept. Making new ones or turning it off needs a current code or the
password, and wrong ones count against the same lock as wrong logins.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.debug import sensitive_post_parameters

from drafts import account_activity, signed_in
from drafts.account_activity import AccountEvent
from drafts.login import count_failure, locked_out_message, refused_by_lock
from drafts.two_factor import (
    TwoFactor,
    looks_like_totp,
    normalized,
    qr_svg,
    required_for,
    turn_off,
)

logger = logging.getLogger(__name__)


def _next_url(request: HttpRequest) -> str:
    """Where to go once set up (a login sent the user here); only a same-site path."""
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return next_url
    return ""


def _page(request: HttpRequest, status: int = 200, **context: object) -> HttpResponse:
    user = request.user
    two_factor = TwoFactor.objects.filter(user=user).first()
    if two_factor is None or not two_factor.enabled:
        two_factor = TwoFactor.setup_for(user)
        uri = two_factor.provisioning_uri()
        secret = two_factor.secret
        context |= {
            "qr_svg": qr_svg(uri),
            "otpauth_uri": uri,
            # In groups of four, as the apps' "enter a setup key" fields accept it.
            "secret_groups": " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
        }
    form = context.setdefault("password_form", PasswordChangeForm(user))
    # Django's form takes the focus; on this page the first thing is two-step verification.
    form.fields["old_password"].widget.attrs.pop("autofocus", None)
    context |= {
        "two_factor": two_factor,
        "sessions": signed_in.sessions_of(user),
        "activity": account_activity.recent(user),
        "activity_days": settings.REPLYHUB_ACCOUNT_ACTIVITY_DAYS,
        "this_session": request.session.session_key,
        "required": required_for(user),
        "next_url": _next_url(request),
    }
    return render(request, "drafts/account_security.html", context, status=status)


@sensitive_post_parameters("code", "confirmation", "old_password", "new_password1", "new_password2")
@login_required
def account_security(request: HttpRequest) -> HttpResponse:
    """Show the user's two-step verification, sessions and password form; turn two-step
    verification on or off, make new recovery codes, sign sessions out, change the
    password."""
    if request.method != "POST":
        return _page(request)
    action = request.POST.get("action")
    username = request.user.get_username()
    if action in ("sign_out", "sign_out_others"):
        return _sign_out(request, action)
    if action not in ("enable", "recovery_codes", "disable", "password"):
        return redirect("account_security")
    if refused_by_lock(request, username, request.user):
        return _page(request, status=429, error=locked_out_message())
    if action == "password":
        return _change_password(request)
    two_factor = TwoFactor.objects.filter(user=request.user).first()
    if action == "enable":
        return _enable(request, two_factor)
    if two_factor is None or not two_factor.enabled:
        return redirect("account_security")
    if not _confirmed(request, two_factor):
        count_failure(request, username, AccountEvent.WRONG_CODE, request.user)
        return _page(
            request,
            error=_("That is neither a current code from your app nor your password."),
        )
    if action == "recovery_codes":
        codes = two_factor.new_recovery_codes()
        logger.info("%s made new recovery codes", username)
        account_activity.note(request, AccountEvent.RECOVERY_CODES_MADE, request.user)
        return _page(request, recovery_codes=codes)
    turn_off(request.user, by=request.user)
    logger.info("%s turned two-step verification off", username)
    account_activity.note(request, AccountEvent.TWO_FACTOR_OFF, request.user)
    messages.success(request, _("Two-step verification is off."))
    return redirect("account_security")


def _enable(request: HttpRequest, two_factor: TwoFactor | None) -> HttpResponse:
    if two_factor is None or two_factor.enabled:
        return redirect("account_security")
    codes = two_factor.confirm(request.POST.get("code", ""))
    if codes is None:
        count_failure(request, request.user.get_username(), AccountEvent.WRONG_CODE, request.user)
        return _page(
            request,
            error=_(
                "That code is not right, so two-step verification is still off. Check that "
                "you scanned the code shown here, and type the 6 digits your app shows now."
            ),
        )
    logger.info("%s turned two-step verification on", request.user.get_username())
    account_activity.note(request, AccountEvent.TWO_FACTOR_ON, request.user)
    messages.success(request, _("Two-step verification is on."))
    # The other sessions began with the password alone: whoever holds them must log in again.
    if ended := signed_in.sign_out(request.user, keep=request.session.session_key):
        messages.info(request, _signed_out_message(ended))
    return _page(request, recovery_codes=codes)


def _change_password(request: HttpRequest) -> HttpResponse:
    """Django's password form (the current password, the new one twice, checked by
    AUTH_PASSWORD_VALIDATORS); a wrong current password counts toward the login lock. The
    other sessions end: they began with the old password."""
    form = PasswordChangeForm(request.user, request.POST)
    if not form.is_valid():
        if "old_password" in form.errors:
            count_failure(request, request.user.get_username(), user=request.user)
        return _page(request, status=400, password_form=form)
    form.save()
    old_key = request.session.session_key
    update_session_auth_hash(request, form.user)  # this session goes on, under a new key
    signed_in.renamed(old_key, request.session.session_key)
    ended = signed_in.sign_out(request.user, keep=request.session.session_key)
    logger.info("%s changed their password", request.user.get_username())
    account_activity.note(request, AccountEvent.PASSWORD_CHANGED, request.user)
    done = _("Your password is changed.")
    messages.success(request, f"{done} {_signed_out_message(ended)}" if ended else done)
    return redirect("account_security")


def _sign_out(request: HttpRequest, action: str) -> HttpResponse:
    """Sign out one of the user's other sessions, or all of them; never the asking one
    (that is what Log out is for)."""
    keep = request.session.session_key
    if action == "sign_out_others":
        ended = signed_in.sign_out(request.user, keep=keep)
    elif (chosen := request.POST.get("session", "")).isdigit():
        ended = signed_in.sign_out(request.user, keep=keep, only=int(chosen))
    else:
        ended = 0
    logger.info("%s signed out %d other session(s)", request.user.get_username(), ended)
    if ended:
        messages.success(request, _signed_out_message(ended))
    else:
        messages.info(request, _("That session had already ended."))
    return redirect(reverse("account_security") + "#sessions")


def _signed_out_message(ended: int) -> str:
    return ngettext(
        "%(count)d other session was signed out.",
        "%(count)d other sessions were signed out.",
        ended,
    ) % {"count": ended}


def _confirmed(request: HttpRequest, two_factor: TwoFactor) -> bool:
    """A current code from the app, or the password: the person at the keyboard is the user,
    not someone who found their session open."""
    value = request.POST.get("confirmation", "")
    if looks_like_totp(normalized(value)) and two_factor.verify(value):
        return True
    return bool(value) and request.user.check_password(value)

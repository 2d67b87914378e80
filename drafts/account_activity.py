"""Account activity: each person's sign-ins, failed attempts and security changes, with
the browser and the client's address, kept REPLYHUB_ACCOUNT_ACTIVITY_DAYS.

The person sees their recent activity on Account security, and after signing in is told of
the failed attempts on their account since they last signed in (someone guessing their
password, or holding it and failing the code). Admins see everyone's under *Account
activity* in the admin, by kind, day and address: where the lock's counters forget after
minutes, this says who was tried, how often, from where.

A wrong password for a name that is no account is kept without the name (people type
their password in the wrong box), so the admin still sees the address's attempts.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, user_logged_in
from django.core.cache import cache
from django.db import models
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext, pgettext_lazy

from drafts.client_address import client_address, user_agent
from drafts.signed_in import describe_browser

# Failures this recent, from the browser and address that then signs in, are not reported
# to the person: they made them.
OWN_TYPOS_MINUTES = 15
# Seconds between two records of tries refused by the lock, per account and address.
LOCKED_NOTED_EVERY = 60


class AccountEvent(models.Model):
    """One sign-in, failed attempt or change to how a person signs in."""

    SIGNED_IN = "signed_in"
    RECOVERY_CODE_USED = "recovery_code_used"
    WRONG_PASSWORD = "wrong_password"
    WRONG_CODE = "wrong_code"
    LOCKED_OUT = "locked_out"
    PASSWORD_CHANGED = "password_changed"
    TWO_FACTOR_ON = "two_factor_on"
    TWO_FACTOR_OFF = "two_factor_off"
    TWO_FACTOR_RESET = "two_factor_reset"
    RECOVERY_CODES_MADE = "recovery_codes_made"
    KINDS = [
        (SIGNED_IN, pgettext_lazy("account event", "Signed in")),
        (RECOVERY_CODE_USED, gettext_lazy("Used a recovery code")),
        (WRONG_PASSWORD, gettext_lazy("Wrong password")),
        (WRONG_CODE, gettext_lazy("Wrong code")),
        (LOCKED_OUT, gettext_lazy("Refused: too many failed attempts")),
        (PASSWORD_CHANGED, gettext_lazy("Password changed")),
        (TWO_FACTOR_ON, gettext_lazy("Two-step verification turned on")),
        (TWO_FACTOR_OFF, gettext_lazy("Two-step verification turned off")),
        (TWO_FACTOR_RESET, gettext_lazy("Two-step verification reset by an admin")),
        (RECOVERY_CODES_MADE, gettext_lazy("New recovery codes made")),
    ]
    FAILURES = (WRONG_PASSWORD, WRONG_CODE, LOCKED_OUT)

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="account_events",
        help_text="Empty for a wrong password given for a name that is no account.",
    )
    kind = models.CharField(max_length=32, choices=KINDS)
    # An admin who acted on the account (a reset of its two-step verification).
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["user", "-at"], name="accountevent_user_at")]
        verbose_name = gettext_lazy("account event")
        verbose_name_plural = gettext_lazy("Account activity")

    def __str__(self) -> str:
        return f"{self.user or '?'}: {self.get_kind_display()}"

    @property
    def failed(self) -> bool:
        return self.kind in self.FAILURES

    @property
    def browser(self) -> str:
        return describe_browser(self.user_agent)


def note(
    request: HttpRequest, kind: str, user: object | None = None, by: object | None = None
) -> AccountEvent | None:
    """Record ``kind`` for ``user`` (None: a name that is no account), from the request's
    client; ``by``: the admin who did it.

    Tries refused by the lock are kept once a minute per account and address (None for the
    others): a script hammering a locked login must not fill the table."""
    address = client_address(request)
    if kind == AccountEvent.LOCKED_OUT:
        key = f"account-activity:locked:{getattr(user, 'pk', None)}:{address}"
        if not cache.add(key, True, LOCKED_NOTED_EVERY):
            return None
    return AccountEvent.objects.create(
        user=user,
        kind=kind,
        by=by,
        ip_address=address,
        user_agent=user_agent(request),
    )


def account_named(username: str) -> object | None:
    """The account a login form's name is for, as the login itself finds it; None if none."""
    model = get_user_model()
    return model._default_manager.filter(**{model.USERNAME_FIELD: username}).first()


def recent(user: object, limit: int = 15) -> list[AccountEvent]:
    """The person's latest events, newest first."""
    return list(user.account_events.all()[:limit])


def failures_since_last_sign_in(user: object, request: HttpRequest) -> list[AccountEvent]:
    """Failed attempts on the account since its last sign-in, newest first, but for the
    last minutes' from the browser and address signing in now: the person's own typos."""
    events = user.account_events.all()
    last = events.filter(kind=AccountEvent.SIGNED_IN).values_list("at", flat=True).first()
    failures = events.filter(kind__in=AccountEvent.FAILURES)
    if last:
        failures = failures.filter(at__gt=last)
    failures = failures.exclude(
        at__gte=timezone.now() - timedelta(minutes=OWN_TYPOS_MINUTES),
        ip_address=client_address(request),
        user_agent=user_agent(request),
    )
    return list(failures)


@receiver(user_logged_in, dispatch_uid="drafts.account_activity.signed_in")
def signed_in(sender: object, request: HttpRequest | None, user: object, **kwargs: object) -> None:
    """Note the sign-in, and tell the person of the failed attempts since the last one."""
    if request is None or user is None:
        return
    failures = failures_since_last_sign_in(user, request)
    note(request, AccountEvent.SIGNED_IN, user)
    if failures and hasattr(request, "_messages"):
        latest = failures[0]
        messages.warning(
            request,
            ngettext(
                "%(count)d failed attempt to sign in to your account since you last signed "
                "in, the latest on %(when)s from %(address)s. If that was not you, change your "
                "password on Account security.",
                "%(count)d failed attempts to sign in to your account since you last signed "
                "in, the latest on %(when)s from %(address)s. If that was not you, change your "
                "password on Account security.",
                len(failures),
            )
            % {
                "count": len(failures),
                "when": formats.date_format(timezone.localtime(latest.at), "DATETIME_FORMAT"),
                "address": latest.ip_address or _("an unknown address"),
            },
        )


def forget_old_events() -> int:
    """Delete the events older than REPLYHUB_ACCOUNT_ACTIVITY_DAYS (every night); the
    number deleted."""
    days = settings.REPLYHUB_ACCOUNT_ACTIVITY_DAYS
    if days <= 0:
        return 0
    cutoff = timezone.now() - timedelta(days=days)
    deleted, _ = AccountEvent.objects.filter(at__lt=cutoff).delete()
    return deleted

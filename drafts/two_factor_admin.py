"""Two-step verification in the admin's user list: who has it on, and resetting it for
someone who lost both their phone and their recovery codes (which signs them out
everywhere).

A reset is recorded in the user's history (who reset it, when). As with making someone a
superuser, only a superuser may reset an admin's: otherwise one admin could take over
another's account with a password reset and a 2FA reset.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.db.models import Exists, OuterRef, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from drafts.account_activity import AccountEvent, note
from drafts.models import StaffProfile
from drafts.signed_in import sign_out
from drafts.two_factor import TwoFactor, turn_off


class TwoFactorUserAdminMixin:
    """For the users' ModelAdmin: a "Two-step verification" column and a reset action."""

    actions = ("reset_two_factor",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        on = TwoFactor.objects.filter(user=OuterRef("pk"), confirmed_at__isnull=False)
        return super().get_queryset(request).annotate(two_factor_on=Exists(on))

    def get_list_display(self, request: HttpRequest) -> tuple:
        return (*super().get_list_display(request), "two_factor")

    @admin.display(description=gettext_lazy("Two-step verification"), boolean=True)
    def two_factor(self, user: User) -> bool:
        return user.two_factor_on

    @admin.action(
        description=gettext_lazy("Reset two-step verification (lost phone and recovery codes)"),
        permissions=("change",),
    )
    def reset_two_factor(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        refused, reset = [], []
        for user in queryset:
            if StaffProfile.role_of(user) == StaffProfile.ADMIN and not request.user.is_superuser:
                refused.append(user.get_username())
            elif turn_off(user, by=request.user):
                note(request, AccountEvent.TWO_FACTOR_RESET, user, by=request.user)
                # Whoever has their sessions (a lost phone, say) must log in anew.
                sign_out(user)
                reset.append(user.get_username())
        if reset:
            self.message_user(
                request,
                _(
                    "Two-step verification reset for %(users)s: they are signed out everywhere, "
                    "and set it up anew at their next login if their role requires it."
                )
                % {"users": ", ".join(reset)},
                level=messages.SUCCESS,
            )
        if refused:
            self.message_user(
                request,
                _("Only a superuser can reset an admin's two-step verification: %(users)s.")
                % {"users": ", ".join(refused)},
                level=messages.ERROR,
            )
        if not reset and not refused:
            self.message_user(
                request, _("None of them had two-step verification on."), level=messages.WARNING
            )

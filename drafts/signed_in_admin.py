"""Signed-in sessions in the admin's user pages: where someone is signed in, and signing
them out everywhere (a stolen laptop, someone who left the team)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from drafts.signed_in import SignedInSession, sign_out


class SignedInSessionInline(admin.TabularInline):
    """The user's sessions as recorded; read-only (deleting a record would not end the
    session: the "Sign out everywhere" action does)."""

    model = SignedInSession
    fields = readonly_fields = ("browser", "ip_address", "signed_in_at", "last_seen_at")
    extra = 0
    can_delete = False
    verbose_name = gettext_lazy("signed-in session")
    verbose_name_plural = gettext_lazy("Signed-in sessions")

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.action(description=gettext_lazy("Sign out everywhere"), permissions=("change",))
def sign_out_everywhere(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[User]
) -> None:
    ended = {user.get_username(): sign_out(user) for user in queryset}
    modeladmin.message_user(
        request,
        _("Signed out: %(users)s.")
        % {"users": ", ".join(f"{name} ({count})" for name, count in ended.items())},
        level=messages.SUCCESS,
    )

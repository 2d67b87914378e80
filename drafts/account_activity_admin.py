"""Account activity in the admin: everyone's sign-ins, failed attempts and security changes
(drafts/account_activity.py), to read and filter: by kind, by day, by the address that
failed or the person tried. Nobody adds, changes or deletes them here; they go after
REPLYHUB_ACCOUNT_ACTIVITY_DAYS."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy

from drafts.account_activity import AccountEvent


@admin.register(AccountEvent)
class AccountEventAdmin(admin.ModelAdmin):
    list_display = ("at", "user", "kind", "ip_address", "browser", "by")
    list_filter = ("kind", "at")
    search_fields = ("user__username", "ip_address")
    date_hierarchy = "at"
    list_select_related = ("user", "by")
    fields = readonly_fields = ("at", "user", "kind", "by", "ip_address", "user_agent")

    @admin.display(description=gettext_lazy("Browser"))
    def browser(self, event: AccountEvent) -> str:
        return event.browser

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

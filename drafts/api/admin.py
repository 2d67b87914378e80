"""API tokens and callbacks in the Django admin (imported by drafts/admin.py).

Only superusers see them there (the admin role's group has no permission on them):
making a token for someone is acting as them. Everyone manages their own tokens on
/account/tokens/.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from drafts.api.callbacks import ApiCallback
from drafts.api.tokens import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "access", "created_at", "last_used_at", "revoked_at")
    list_filter = ("access", "revoked_at")
    search_fields = ("name", "prefix", "user__username")
    readonly_fields = ("prefix", "created_at", "last_used_at", "revoked_at", "signing_secret")
    actions = ("revoke_tokens",)

    def get_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> list[str]:
        if obj is None:
            return ["user", "name", "access"]
        return ["user", "name", "access", *self.readonly_fields]

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> tuple:
        # A token's user never changes: it would hand the secret to someone else.
        return (*self.readonly_fields, "user") if obj else ()

    def save_model(self, request: HttpRequest, obj: ApiToken, form: object, change: bool) -> None:
        if not change:
            request._new_token_secret = obj.set_secret()  # shown once, by response_add
        super().save_model(request, obj, form, change)

    def response_add(self, request: HttpRequest, obj: ApiToken, *args: object) -> HttpResponse:
        """Show the new token's secret, once, instead of the usual redirect."""
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "token": obj,
            "secret": request._new_token_secret,
            "title": f"API token “{obj.name}” created",
        }
        return TemplateResponse(request, "admin/drafts/apitoken/created.html", context)

    @admin.action(description="Revoke the selected tokens")
    def revoke_tokens(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        revoked = sum(token.revoke() for token in queryset)
        self.message_user(request, f"{revoked} token(s) revoked.", level=messages.SUCCESS)


@admin.register(ApiCallback)
class ApiCallbackAdmin(admin.ModelAdmin):
    list_display = ("draft", "url", "state", "attempts", "last_status", "delivered_at")
    list_filter = ("state",)
    readonly_fields = [f.name for f in ApiCallback._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

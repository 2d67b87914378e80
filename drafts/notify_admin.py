"""Django admin for chat notifications: channels are edited, notifications only read.

Imported by drafts/admin.py (the module Django discovers).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest

from drafts import sealing
from drafts.notify import Notification, NotificationChannel, send_test


def _https_by_default(field: models.Field, **kwargs: object) -> forms.Field | None:
    """A URL typed without a scheme is https (Django 6's default, without its warning)."""
    if isinstance(field, models.URLField):
        kwargs.setdefault("assume_scheme", "https")
    return field.formfield(**kwargs)


class NotificationChannelForm(forms.ModelForm):
    class Meta:
        formfield_callback = _https_by_default
        model = NotificationChannel
        fields = (
            *("mailbox", "name", "kind", "url", "secret", "enabled", "language"),
            *("on_drafts_ready", "on_send_failed", "on_queue_over", "queue_threshold"),
            *("on_drafts_due", "due_warning_minutes"),
        )
        # The secret signs requests: typed once, kept, not shown on every page load.
        widgets = {"secret": forms.PasswordInput(render_value=True)}

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        for name in ("url", "secret"):
            if sealing.lost(getattr(self.instance, name)):
                field = self.fields[name]
                field.help_text = (
                    "Can no longer be read: it was sealed with a SECRET_KEY that this server "
                    f"no longer has. Enter it again. {field.help_text}"
                )


@admin.register(NotificationChannel)
class NotificationChannelAdmin(admin.ModelAdmin):
    form = NotificationChannelForm
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = ("name", "mailbox", "kind", "enabled", "events", "language")
    list_filter = ("kind", "enabled", "mailbox")
    actions = ("send_test_message",)
    fieldsets = (
        (None, {"fields": ("mailbox", "name", "kind", "url", "secret", "enabled", "language")}),
        (
            "Events",
            {
                "fields": (
                    *("on_drafts_ready", "on_send_failed", "on_queue_over", "queue_threshold"),
                    *("on_drafts_due", "due_warning_minutes"),
                )
            },
        ),
    )

    @admin.display(description="Events")
    def events(self, channel: NotificationChannel) -> str:
        chosen = [
            ("new drafts", channel.on_drafts_ready),
            ("send failures", channel.on_send_failed),
            (f"queue over {channel.queue_threshold}", channel.on_queue_over),
            (
                f"due within {channel.due_warning_minutes} min"
                if channel.due_warning_minutes
                else "overdue",
                channel.on_drafts_due,
            ),
        ]
        return ", ".join(name for name, on in chosen if on) or "none"

    @admin.action(description="Send a test message now", permissions=["change"])
    def send_test_message(
        self, request: HttpRequest, queryset: QuerySet[NotificationChannel]
    ) -> None:
        # Run here rather than in a worker: whoever sets up a robot wants the answer now.
        for channel in queryset.select_related("mailbox")[:10]:
            _, outcome = send_test(channel)
            level = messages.SUCCESS if outcome == "sent" else messages.ERROR
            self.message_user(request, f"{channel}: {outcome}", level=level)


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    """Every message sent or tried, with each attempt's answer: failures stay visible."""

    list_display = ("created_at", "event", "channel", "state", "attempts", "sent_at", "last_error")
    list_filter = ("state", "event", "channel")
    readonly_fields = (
        *("channel", "event", "state", "attempts", "next_attempt_at", "sent_at", "created_at"),
        *("last_error", "attempt_log", "payload"),
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

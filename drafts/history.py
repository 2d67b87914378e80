"""A draft's history: every action on it (who, when, the text before and after), notes for
the team among them.

Imported by drafts.models, which registers the model with Django (see its end).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy

from drafts.models import Draft


class ReviewEvent(models.Model):
    """Who did what to a draft, and when, with the text before and after."""

    EDIT, APPROVE, REJECT, RETRY, RETRY_SEND, SENT, SEND_FAILED = (
        "edit",
        "approve",
        "reject",
        "retry",
        "retry_send",
        "sent",
        "send_failed",
    )
    REGENERATE, REASSIGN = "regenerate", "reassign"
    SEND_UNCERTAIN, CONFIRM_SENT = "send_uncertain", "confirm_sent"
    UNDO, REOPEN, NOTE = "undo", "reopen", "note"
    ATTACH, DETACH = "attach", "detach"
    ACTIONS = [
        (EDIT, gettext_lazy("Edited")),
        (APPROVE, gettext_lazy("Approved")),
        (REJECT, gettext_lazy("Rejected")),
        (RETRY, gettext_lazy("Retried generation")),
        (RETRY_SEND, gettext_lazy("Retried sending")),
        (SENT, gettext_lazy("Sent")),
        (SEND_FAILED, gettext_lazy("Sending failed")),
        (REGENERATE, gettext_lazy("Asked the model again")),
        (REASSIGN, gettext_lazy("Reassigned")),
        (SEND_UNCERTAIN, gettext_lazy("Delivery uncertain")),
        (CONFIRM_SENT, gettext_lazy("Confirmed as delivered")),
        (UNDO, gettext_lazy("Approval undone before sending")),
        (REOPEN, gettext_lazy("Rejection taken back")),
        (NOTE, gettext_lazy("Note for the team")),
        (ATTACH, gettext_lazy("File attached to the reply")),
        (DETACH, gettext_lazy("File removed from the reply")),
    ]

    draft = models.ForeignKey(Draft, on_delete=models.CASCADE, related_name="events")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    action = models.CharField(max_length=20, choices=ACTIONS)
    text_before = models.TextField(blank=True)
    text_after = models.TextField(blank=True)
    # The reason's key, shown in the reader's language (a rejection's free text is the note).
    reason = models.CharField(max_length=30, choices=Draft.REJECT_REASONS, blank=True)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        # /metrics counts events per action from this index, not the wide rows.
        indexes = [models.Index(fields=["action"], name="reviewevent_action")]

    def __str__(self) -> str:
        return f"{self.get_action_display()} by {self.user or 'system'}"

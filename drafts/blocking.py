"""Blocked senders: addresses or whole domains whose mail is stored without a draft.

Imported by drafts.models, which registers the model with Django (see its end).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from drafts.mailboxes import Mailbox
from drafts.models import Draft


class BlockedSender(models.Model):
    """An address or a whole domain whose mail is stored but gets no draft (spam, a
    marketing sender): listed under "Not drafted" as blocked, never answered by the model."""

    mailbox = models.ForeignKey(
        Mailbox,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="blocked_senders",
        help_text="Empty: blocked in every mailbox.",
    )
    pattern = models.CharField(
        max_length=320,
        help_text="An address (offers@spam.example) or a whole domain (@spam.example).",
    )
    note = models.CharField(max_length=300, blank=True, help_text="Why, for colleagues.")
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, editable=False
    )

    class Meta:
        ordering = ["pattern", "id"]
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "pattern"], name="unique_blocked_sender")
        ]

    def __str__(self) -> str:
        return self.pattern

    def save(self, *args: object, **kwargs: object) -> None:
        self.pattern = self.pattern.strip().lower()
        super().save(*args, **kwargs)

    def clean(self) -> None:
        local, at, domain = self.pattern.strip().lower().rpartition("@")
        whole_domain = not local and self.pattern.strip().startswith("@")
        address = bool(local) and not re.search(r"[@\s]", local)
        if (
            not at
            or not (whole_domain or address)
            or not re.fullmatch(r"[^\s@.]+(\.[^\s@.]+)+", domain)
        ):
            raise ValidationError(
                {
                    "pattern": f"“{self.pattern}” is neither an address (name@example.com) nor "
                    "a domain (@example.com)."
                }
            )

    @classmethod
    def block(cls, draft: Draft, user: object) -> BlockedSender | None:
        """Block the sender of ``draft``'s email in its mailbox (a reviewer rejecting spam);
        None when the email has no sender address to block."""
        address = draft.message.from_address.strip().lower()
        if not address:
            return None
        blocked, _created = cls.objects.get_or_create(
            mailbox_id=draft.mailbox_id,
            pattern=address,
            defaults={"created_by": user, "note": f"Rejected draft {draft.pk}"},
        )
        return blocked

    @classmethod
    def matcher(cls, mailbox: Mailbox) -> Callable[[str], bool]:
        """Whether an address is blocked in ``mailbox`` (one query, for a whole batch)."""
        patterns = set(
            cls.objects.filter(Q(mailbox__isnull=True) | Q(mailbox=mailbox)).values_list(
                "pattern", flat=True
            )
        )
        if not patterns:
            return lambda address: False

        def blocked(address: str) -> bool:
            address = address.strip().lower()
            return address in patterns or "@" + address.rpartition("@")[2] in patterns

        return blocked

"""Saved replies on the draft page: the ones that suit a draft, filled in from it.

A value the draft does not have becomes a [bracketed] placeholder in the reviewer's
language ("[order number]"): the approval refuses text with placeholders, so a saved reply
can never go out with a hole in it unnoticed.
"""

from __future__ import annotations

import string

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Case, F, IntegerField, Q, QuerySet, Value, When
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from drafts.mailboxes import Mailbox
from drafts.models import INTENT_CHOICES, Draft
from inference.extract import first_value


class SavedReply(models.Model):
    """A text reviewers insert into a reply with a click: a refund procedure, opening hours,
    the link to a manual. {variables} are filled from the draft; one the draft cannot fill
    stays as a [bracketed] placeholder, which stops the approval until someone fills it."""

    VARIABLES = {
        "customer_name": "the customer's name (as analysed, else the sender's)",
        "product": "the product the email is about",
        "order_number": "the first order or ticket number in the email",
        "key_date": "the first date in the email",
        "company_name": "the mailbox's company name",
        "signoff": "the mailbox's sign-off",
        "reviewer": "the name of the reviewer inserting it",
    }
    HELP = (
        "The part of the reply it stands for (the draft keeps its greeting and sign-off). "
        "Variables: " + ", ".join(f"{{{name}}}" for name in VARIABLES) + "; write {{ and }} "
        "for a brace."
    )

    title = models.CharField(max_length=100, help_text="What reviewers search for.")
    text = models.TextField(help_text=HELP)
    mailbox = models.ForeignKey(
        Mailbox,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="saved_replies",
        help_text="Empty: offered in every mailbox.",
    )
    language = models.CharField(
        max_length=5,
        blank=True,
        choices=[("", gettext_lazy("Any language")), ("zh", "简体中文"), ("en", "English")],
        help_text="Offered for emails in this language (empty: every language).",
    )
    intent = models.CharField(
        max_length=30,
        blank=True,
        choices=[("", gettext_lazy("Any intent")), *INTENT_CHOICES],
        help_text="Listed first for drafts of this intent.",
    )
    is_active = models.BooleanField(default=True, help_text="Untick to stop offering it.")
    uses = models.PositiveIntegerField(default=0, editable=False, help_text="Times inserted.")
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, editable=False
    )

    class Meta:
        ordering = ["title", "id"]
        verbose_name_plural = "saved replies"

    def __str__(self) -> str:
        return self.title

    def variables(self) -> list[str]:
        """The {names} the text uses, in order; ValueError names a malformed brace."""
        try:
            return [
                name
                for _text, name, _spec, _conv in string.Formatter().parse(self.text)
                if name is not None
            ]
        except ValueError as exc:
            raise ValueError(f"{exc} (write {{{{ and }}}} for a brace)") from exc

    def clean(self) -> None:
        try:
            used = self.variables()
        except ValueError as exc:
            raise ValidationError({"text": str(exc)}) from exc
        unknown = sorted({name for name in used if name not in self.VARIABLES})
        if unknown:
            raise ValidationError(
                {
                    "text": f"Unknown variable(s): {', '.join('{' + n + '}' for n in unknown)}. "
                    f"Use: {', '.join('{' + n + '}' for n in self.VARIABLES)}."
                }
            )


MISSING = {
    "customer_name": gettext_lazy("customer name"),
    "product": gettext_lazy("product"),
    "order_number": gettext_lazy("order number"),
    "key_date": gettext_lazy("date"),
    "company_name": gettext_lazy("company name"),
    "signoff": gettext_lazy("sign-off"),
    "reviewer": gettext_lazy("your name"),
}


def offered(draft: Draft) -> QuerySet[SavedReply]:
    """The active saved replies for the draft's mailbox and language, its intent's first."""
    return (
        SavedReply.objects.filter(is_active=True)
        .filter(Q(mailbox__isnull=True) | Q(mailbox_id=draft.mailbox_id))
        .filter(Q(language="") | Q(language=draft.language))
        .annotate(
            fits=Case(
                When(intent=draft.intent, then=Value(0)),
                When(intent="", then=Value(1)),
                default=Value(2),
                output_field=IntegerField(),
            )
        )
        .order_by("fits", F("uses").desc(), "title", "id")
    )


def values_for(draft: Draft, user: object) -> dict[str, str]:
    """What each variable stands for in this draft ("" where the draft has nothing)."""
    fields = draft.fields or {}
    mailbox = draft.message.mailbox
    reviewer = getattr(user, "get_full_name", lambda: "")() or getattr(user, "username", "")
    return {
        "customer_name": first_value(fields, "customer_name") or draft.message.from_name,
        "product": first_value(fields, "product"),
        "order_number": first_value(fields, "order_numbers"),
        "key_date": first_value(fields, "key_dates"),
        "company_name": mailbox.effective_company_name,
        "signoff": mailbox.effective_signoff,
        "reviewer": reviewer,
    }


def fill(text: str, values: dict[str, str]) -> str:
    """``text`` with each {variable} replaced; a missing value becomes "[what it is]".

    Text the admin's check would have refused (a stray brace, saved by other means) is
    offered as written rather than not at all.
    """
    parts = []
    try:
        for literal, name, _spec, _conversion in string.Formatter().parse(text):
            parts.append(literal)
            if name is not None:
                value = values.get(name, "")
                parts.append(value or f"[{_(MISSING.get(name, name))}]")
    except ValueError:
        return text
    return "".join(parts)


def for_page(draft: Draft, user: object) -> list[dict[str, object]]:
    """The saved replies the draft page offers, filled in, as the page's script takes them."""
    values = values_for(draft, user)
    return [
        {"id": saved.pk, "title": saved.title, "text": fill(saved.text, values)}
        for saved in offered(draft)[:200]
    ]

"""Saved replies on the draft page: the ones that suit a draft, filled in from it.

A value the draft does not have becomes a [bracketed] placeholder in the reviewer's
language ("[order number]"): the approval refuses text with placeholders, so a saved reply
can never go out with a hole in it unnoticed.
"""

from __future__ import annotations

import string

from django.db.models import Case, F, IntegerField, Q, QuerySet, Value, When
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from drafts.models import Draft, SavedReply
from inference.extract import first_value

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

"""Learning from edits: approved replies to similar emails, shown to the model as examples.

With REPLYHUB_FEW_SHOT_EXAMPLES > 0, each new email is drafted after the model has seen the
few approved replies whose emails share the most words with it (Chinese included: the
search index cuts it into character pairs) and that have the same intent. The draft records
which ones were shown.
"""

from __future__ import annotations

from drafts import search
from drafts.models import Draft
from inference.drafting import EmailInput, Example, ExampleFinder

APPROVED = [Draft.APPROVED, Draft.SENDING, Draft.SENT]
CANDIDATES = 50  # similar messages looked at, of any intent or state
EXAMPLE_CHARS = 1500  # of each example email and reply


def finder(count: int) -> ExampleFinder:
    """A function giving up to ``count`` examples for an email of a given intent."""

    def find(email: EmailInput, intent: str) -> list[Example]:
        similar = search.similar_message_ids(f"{email.subject}\n{email.body}", CANDIDATES)
        rank = {message_id: position for position, message_id in enumerate(similar)}
        drafts = Draft.objects.filter(
            message_id__in=similar, intent=intent, status__in=APPROVED
        ).select_related("message")
        best = sorted(drafts, key=lambda d: rank[d.message_id])[:count]
        return [
            Example(
                str(d.pk), d.message.text_for_model[:EXAMPLE_CHARS], d.reply_text[:EXAMPLE_CHARS]
            )
            for d in best
        ]

    return find

"""The copies (Cc) of a reply: who else the customer's email went to, kept on the answer as
a mail client's "Reply all" keeps them, and what the reviewer makes of the list.

A new draft starts with everyone in the email's To and Cc but the customer (the reply's
To) and the team's own mailboxes, when its mailbox answers to all (the default). The
reviewer sees the list beside the reply and may change it; each address is checked, and
the list is fixed with the reply at approval. The copies are in the Cc header and each
gets its own RCPT TO; a copy the mail server refuses is left out and said in the
delivery's answer, never holding up the reply to the customer.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.translation import gettext as _

from drafts.mailtext import unique_addresses

# More copies than this are not kept: a reply is no mailing.
MAX_COPIES = 20


class CopiesRefused(ValueError):
    """The reviewer's list of copies holds something that is not an address, or too many."""


def reply_all(recipients: list[str], customer: str, mailbox_addresses: set[str]) -> list[str]:
    """The copies a new draft starts with: ``recipients`` (the email's To and Cc) but the
    customer and the team's own mailboxes, each once, at most MAX_COPIES."""
    left_out = {customer.lower(), *(address.lower() for address in mailbox_addresses)}
    return unique_addresses(a for a in recipients if a.lower() not in left_out)[:MAX_COPIES]


def parse(text: str, customer: str) -> list[str]:
    """The reviewer's list (addresses separated by commas, semicolons or lines; "Name
    <address>" accepted), each once and never the customer, who gets the reply anyway.

    Raises CopiesRefused naming the first entry that is not an email address."""
    found = []
    for entry in re.split(r"[,;\n]+", text):
        entry = entry.strip()
        if not entry:
            continue
        address = entry.rsplit("<", 1)[1].rstrip(">").strip() if "<" in entry else entry
        try:
            validate_email(address)
        except ValidationError:
            raise CopiesRefused(
                _("“%(entry)s” is not an email address; the copies were not changed.")
                % {"entry": entry[:100]}
            ) from None
        found.append(address)
    kept = unique_addresses(a for a in found if a.lower() != customer.lower())
    if len(kept) > MAX_COPIES:
        raise CopiesRefused(
            _("At most %(max)s copies; this list has %(n)s.") % {"max": MAX_COPIES, "n": len(kept)}
        )
    return kept


def naming(address: str) -> str:
    """A regular expression (for ``__iregex``, on SQLite and PostgreSQL alike) that finds
    ``address`` in a stored list of copies or a Cc header, and not inside a longer one."""
    return rf'(^|[\s<,;"]){re.escape(address)}($|[\s>,;"])'


def lines(copies: list[str]) -> str:
    """The copies as stored: one address per line."""
    return "\n".join(copies)


def of(stored: str) -> list[str]:
    """The stored copies as a list."""
    return [line for line in stored.splitlines() if line.strip()]

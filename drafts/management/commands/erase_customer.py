"""manage.py erase_customer ADDRESS --by NAME [--mailbox NAME] [--yes]: a customer's right to
have their data deleted. Without --yes it only lists what would be erased."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from drafts import erasure
from drafts.models import Mailbox


class Command(BaseCommand):
    help = (
        "Erase every email from or to a customer's address, with its drafts, replies, "
        "attachments and history (drafts/erasure.py). Lists what it would erase unless "
        "--yes is given."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("address", help="The customer's email address")
        parser.add_argument(
            "--by", required=True, help="Who asked for the erasure (kept in its record)"
        )
        parser.add_argument("--mailbox", help="Only this mailbox (default: every mailbox)")
        parser.add_argument("--yes", action="store_true", help="Erase; without it, only list")

    def handle(self, *args: object, **options: object) -> None:
        mailbox = None
        if options["mailbox"]:
            mailbox = Mailbox.objects.filter(name=options["mailbox"]).first()
            if mailbox is None:
                raise CommandError(f"No mailbox is called {options['mailbox']!r}.")
        try:
            found = erasure.plan(options["address"], mailbox)
        except ValidationError as exc:
            raise CommandError(exc.messages[0]) from None
        where = f"mailbox {mailbox.name}" if mailbox else "every mailbox"
        if found.empty:
            self.stdout.write(f"Nothing is stored about {found.address} in {where}.")
            return
        self.stdout.write(f"Stored about {found.address} in {where}:")
        for kind, count in found.counts.items():
            self.stdout.write(f"  {count:>7,} {kind}")
        if not options["yes"]:
            self.stdout.write("Nothing was erased. Run again with --yes to erase all of this.")
            return
        record = erasure.erase(found, options["by"])
        self.stdout.write(
            self.style.SUCCESS(
                f"Erased. Record {record.pk} ({record.created_at:%Y-%m-%d %H:%M}, by "
                f"{record.requested_by}) keeps the counts and the address's SHA-256 only."
            )
        )

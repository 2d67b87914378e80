"""manage.py fetch_mail: fetch new mail over IMAP for every configured mailbox."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from drafts.imap import IMAP_ERRORS, IMAPConfigError, fetch_mailbox
from drafts.models import Mailbox


class Command(BaseCommand):
    help = "Fetch new mail over IMAP (BODY.PEEK[], stored before \\Seen is set). Safe to repeat."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--mailbox", help="Only this mailbox (default: all with IMAP)")

    def handle(self, *args: object, mailbox: str | None, **options: object) -> None:
        Mailbox.default()  # picks up IMAP_* from the environment
        boxes = Mailbox.objects.exclude(imap_host="")
        if mailbox:
            boxes = boxes.filter(name=mailbox)
        if not boxes:
            raise CommandError("No mailbox has IMAP configured: set IMAP_HOST, IMAP_USER, ...")
        failed = []
        for box in boxes:
            try:
                report = fetch_mailbox(box, progress=self.stdout.write)
            except (*IMAP_ERRORS, IMAPConfigError) as exc:
                failed.append(f"{box.name}: {exc}")
                self.stderr.write(f"{box.name}: fetching failed: {exc}")
                continue
            self.stdout.write(self.style.SUCCESS(f"{box.name}: {report}"))
        if failed:
            raise CommandError("; ".join(failed))

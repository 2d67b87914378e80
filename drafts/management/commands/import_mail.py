"""manage.py import_mail PATH...: import .eml files, folders and mbox files."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from drafts.ingest import import_paths
from drafts.mailparse import NotMailError
from drafts.models import Mailbox


class Command(BaseCommand):
    help = "Import .eml files, folders of them and mbox files. Safe to run twice."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument("--mailbox", default="default", help="Mailbox name (default: default)")

    def handle(self, *args: object, paths: list[Path], mailbox: str, **options: object) -> None:
        if mailbox == "default":
            box = Mailbox.default()
        else:
            box = Mailbox.objects.filter(name=mailbox).first()
            if box is None:
                raise CommandError(f"No mailbox named {mailbox!r}; create it in the admin first.")
        try:
            report = import_paths(paths, box, progress=lambda line: self.stdout.write(line))
        except NotMailError as exc:
            raise CommandError(f"Nothing imported: {exc}") from exc
        self.stdout.write(self.style.SUCCESS(f"Done: {report}"))

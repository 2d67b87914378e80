"""manage.py apply_retention [--days N] [--yes]: remove the content of emails handled more
than N days ago (REPLYHUB_RETENTION_DAYS by default), keeping what the stats count; what the
nightly schedule does. Without --yes it only says how much that would be."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from drafts import retention


class Command(BaseCommand):
    help = (
        "Redact the emails handled more than --days days ago (default REPLYHUB_RETENTION_DAYS): "
        "content removed, numbers kept (drafts/retention.py). Lists unless --yes is given."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, help="Default: REPLYHUB_RETENTION_DAYS")
        parser.add_argument("--yes", action="store_true", help="Redact; without it, only list")

    def handle(self, *args: object, days: int | None, yes: bool, **options: object) -> None:
        days = settings.REPLYHUB_RETENTION_DAYS if days is None else days
        if days < 1:
            raise CommandError(
                "No retention period: set REPLYHUB_RETENTION_DAYS or give --days (1 or more)."
            )
        waiting = retention.due(days)
        count = waiting.count()
        if not count:
            self.stdout.write(f"Nothing was handled more than {days} days ago and kept in full.")
            return
        oldest = waiting.order_by("received_at").values_list("received_at", flat=True).first()
        self.stdout.write(
            f"{count:,} messages handled more than {days} days ago (the oldest stored "
            f"{oldest:%Y-%m-%d}) still have their content."
        )
        if not yes:
            self.stdout.write("Nothing was changed. Run again with --yes to redact them.")
            return
        self.stdout.write(self.style.SUCCESS(retention.apply_retention(days)))

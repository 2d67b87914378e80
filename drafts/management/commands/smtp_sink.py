"""manage.py smtp_sink: a local SMTP server that saves each message as a .eml file.

The default run sends replies here, so a new user sees exactly what would go out
without any real mail leaving the machine.
"""

from __future__ import annotations

import time
from pathlib import Path

from aiosmtpd.controller import Controller
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone


class SaveToFolder:
    """aiosmtpd handler: write each accepted message to its own file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.count = 0

    async def handle_DATA(self, server: object, session: object, envelope) -> str:
        self.count += 1
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        path = self.folder / f"{stamp}-{self.count:04d}.eml"
        path.write_bytes(envelope.original_content or envelope.content)
        print(f"SMTP sink: saved message to {', '.join(envelope.rcpt_tos)} as {path}", flush=True)
        return "250 Message accepted for delivery"


class Command(BaseCommand):
    help = "Run a local SMTP server that saves every message under var/outbox/."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=settings.EMAIL_PORT)
        parser.add_argument("--dir", type=Path, default=settings.REPLYHUB_OUTBOX_DIR)

    def handle(self, *args: object, host: str, port: int, dir: Path, **options: object) -> None:
        controller = Controller(SaveToFolder(dir), hostname=host, port=port)
        controller.start()
        self.stdout.write(f"SMTP sink listening on {host}:{port}, saving to {dir}")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            controller.stop()

"""manage.py watch_mail: keep IMAP connections open and fetch new mail within seconds.

One thread per mailbox with IMAP configured: IMAP IDLE where the server offers it,
polling otherwise; reconnects with backoff. `make run` starts it when IMAP is set up;
the django-q2 schedule polls as well, as a fallback.
"""

from __future__ import annotations

import threading

from django.core.management.base import BaseCommand, CommandError

from drafts.imap import watch
from drafts.models import Mailbox


class Command(BaseCommand):
    help = "Watch every IMAP mailbox (IDLE or polling) and fetch new mail as it arrives."

    def handle(self, *args: object, **options: object) -> None:
        Mailbox.default()  # picks up IMAP_* from the environment
        mailboxes = list(Mailbox.objects.exclude(imap_host=""))
        if not mailboxes:
            raise CommandError("No mailbox has IMAP configured: set IMAP_HOST, IMAP_USER, ...")
        stop = threading.Event()
        threads = [
            threading.Thread(
                target=watch,
                args=(box.pk, stop),
                kwargs={
                    "on_fetch": lambda r, name=box.name: (
                        r.added and self.stdout.write(f"{name}: {r}")
                    )
                },
                name=f"watch-{box.name}",
                daemon=True,
            )
            for box in mailboxes
        ]
        for thread in threads:
            thread.start()
        self.stdout.write(f"Watching {', '.join(b.name for b in mailboxes)} for new mail")
        try:
            while any(t.is_alive() for t in threads):
                for thread in threads:
                    thread.join(timeout=1)
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()

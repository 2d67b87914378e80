"""manage.py io_worker: the I/O worker, django-q2's cluster of REPLYHUB_IO_QUEUE.

It sends approved replies, delivers chat notifications and API callbacks, polls IMAP and
runs their minute sweeps; it never loads the model, so none of that waits behind drafts.
The same as ``Q_CLUSTER_NAME=<REPLYHUB_QUEUE>-io manage.py qcluster``: this process
becomes that cluster (exec), so a supervisor's signals reach it directly.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Run the I/O worker: sending, notifications, callbacks, IMAP polling (no model)."

    def handle(self, *args: object, **options: object) -> None:
        queue = settings.REPLYHUB_IO_QUEUE
        if not queue:
            raise CommandError(
                "REPLYHUB_IO_WORKERS is 0, so there is no I/O queue: the model workers "
                "(manage.py qcluster) send the replies themselves."
            )
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        sys.stdout.flush()
        os.execve(
            sys.executable,
            [sys.executable, manage, "qcluster"],
            {**os.environ, "Q_CLUSTER_NAME": queue},
        )

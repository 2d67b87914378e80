"""manage.py run: set ReplyHub up and run the web server, the workers and the SMTP sink.

Migrates, creates the first admin (printing its password once), imports the demo inbox
on first run, then starts the processes together (the web server, the model's worker, the
I/O worker that sends, the SMTP sink) and restarts any that crashes, with backoff. Ctrl-C
stops all of them.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from drafts.imap import ensure_schedule
from drafts.ingest import import_paths
from drafts.models import Mailbox, Message

DEMO_INBOX = Path(__file__).resolve().parents[2] / "demo" / "inbox.mbox"
MAX_BACKOFF = 30.0
STOP_GRACE = 10.0  # seconds the children get to stop after Ctrl-C


def _interrupt(signum: int, frame: object) -> None:
    """Stop on SIGTERM or SIGINT, so the children are stopped too."""
    raise KeyboardInterrupt


class Supervised:
    """A child process that is restarted with growing delays when it exits."""

    def __init__(self, name: str, argv: list[str]) -> None:
        self.name, self.argv = name, argv
        self.process: subprocess.Popen | None = None
        self.backoff = 1.0
        self.restart_at = 0.0
        self.started_at = 0.0

    def start(self) -> None:
        # Its own process group, so stopping it also stops the processes it forked
        # (a django-q2 cluster is several).
        self.process = subprocess.Popen(self.argv, start_new_session=True)
        self.started_at = time.monotonic()

    def check(self, log: Callable[[str], object]) -> None:
        """Restart the process if it has exited and its backoff delay has passed."""
        now = time.monotonic()
        if self.process is not None and self.process.poll() is not None:
            code = self.process.returncode
            self._signal_group(signal.SIGKILL)  # leftovers of the crashed process
            if now - self.started_at > 60:
                self.backoff = 1.0  # it ran fine for a while: start over
            log(f"{self.name} exited with code {code}; restarting in {self.backoff:.0f} s")
            self.process = None
            self.restart_at = now + self.backoff
            self.backoff = min(self.backoff * 2, MAX_BACKOFF)
        if self.process is None and now >= self.restart_at:
            self.start()

    def terminate(self) -> None:
        """Ask the process to stop.

        Only the main process gets SIGTERM: a django-q2 cluster stops its own workers in
        order, and hangs if they are all signalled at once.
        """
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def wait_or_kill(self, deadline: float) -> None:
        """Wait for the process until ``deadline``, then kill whatever is left of its group."""
        if self.process is None:
            return
        try:
            self.process.wait(timeout=max(deadline - time.monotonic(), 0))
        except subprocess.TimeoutExpired:
            pass
        self._signal_group(signal.SIGKILL)
        self.process.wait()

    def _signal_group(self, signum: int) -> None:
        try:
            os.killpg(self.process.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


class Command(BaseCommand):
    help = "Set up ReplyHub and run the web server, the workers and the SMTP sink."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default="127.0.0.1:8000", help="host:port of the web server")
        parser.add_argument("--no-demo", action="store_true", help="Do not import the demo inbox")
        parser.add_argument(
            "--no-sink", action="store_true", help="Send to the configured SMTP server instead"
        )

    def handle(
        self, *args: object, bind: str, no_demo: bool, no_sink: bool, **options: object
    ) -> None:
        call_command("migrate", interactive=False, verbosity=1)
        self._ensure_admin()
        mailbox = Mailbox.default()
        watching = ensure_schedule()
        if watching:
            self.stdout.write(
                "IMAP: watching for new mail (IDLE), and polling every "
                f"{settings.IMAP_POLL_MINUTES} minute(s) as a fallback."
            )
        if not no_demo and not Message.objects.exists():
            self.stdout.write("First run: importing the demo inbox…")
            report = import_paths([DEMO_INBOX], mailbox, progress=self.stdout.write)
            self.stdout.write(f"Demo inbox: {report}")
        manage = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py")]
        children = [
            Supervised("web server", [*manage, "runserver", bind, "--noreload"]),
            Supervised("worker", [*manage, "qcluster"]),
        ]
        if settings.REPLYHUB_IO_QUEUE:  # sends, notifications, callbacks: never behind drafts
            children.append(Supervised("I/O worker", [*manage, "io_worker"]))
        if not no_sink:
            children.append(Supervised("SMTP sink", [*manage, "smtp_sink"]))
        if watching:
            children.append(Supervised("IMAP watcher", [*manage, "watch_mail"]))
        for child in children:
            child.start()
        self.stdout.write(
            self.style.SUCCESS(f"\nReplyHub is running: open http://{bind}/ (Ctrl-C stops it)\n")
        )
        # SIGINT explicitly too: a process started in the background by a shell without job
        # control (nohup, `cmd &` in a script) inherits SIGINT ignored, and Ctrl-C or a
        # supervisor's SIGINT would then leave ReplyHub running.
        signal.signal(signal.SIGTERM, _interrupt)
        signal.signal(signal.SIGINT, _interrupt)
        try:
            while True:
                time.sleep(1)
                for child in children:
                    child.check(lambda line: self.stderr.write(line))
        except KeyboardInterrupt:
            self.stdout.write("Stopping…")
        finally:
            for child in children:
                child.terminate()
            deadline = time.monotonic() + STOP_GRACE
            for child in children:
                child.wait_or_kill(deadline)

    def _ensure_admin(self) -> None:
        user_model = get_user_model()
        if user_model.objects.filter(is_superuser=True).exists():
            return
        password = secrets.token_urlsafe(12)
        user_model.objects.create_superuser("admin", "", password)
        self.stdout.write(
            self.style.WARNING(
                f"\nCreated the admin user.  username: admin   password: {password}\n"
                "This password is shown only once; change it under Account security.\n"
            )
        )

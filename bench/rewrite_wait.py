"""How long a reviewer waits for a rewrite they asked for while the worker has a backlog.

    .venv/bin/python bench/rewrite_wait.py --backlog 20
    .venv/bin/python bench/rewrite_wait.py --backlog 20 --app /tmp/replyhub-old   # another commit

The default shape of `make run`: SQLite, django-q2's ORM broker, one `manage.py qcluster`
worker with the bundled model on the CPU (short replies: REPLYHUB_MAX_NEW_TOKENS=48). One
email is drafted first (the model loads); then --backlog emails arrive at once, and when
the worker has begun on them the reviewer asks for a rewrite of the first draft
("shorter"), through Draft.regenerate as the draft page does. The clock runs from the
request until the rewritten draft is ready; the drafts the worker wrote meanwhile and the
backlog still queued at both ends are counted. Prints the figures and a Markdown row.

This process uses the ReplyHub tree of --app (its models, its migrations) on a fresh
database in a temporary folder; the worker runs from that tree too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pagebench
from pagebench import say

ROOT = Path(__file__).resolve().parent.parent


POLL = 0.2  # seconds between looks at the database: the rewrite's wait is what is timed


def measure(app: Path, backlog: int, folder: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env |= {"REPLYHUB_VAR_DIR": str(folder), "REPLYHUB_WORKERS": "1",
            "REPLYHUB_BATCH_SIZE": "1", "REPLYHUB_MAX_NEW_TOKENS": "48",
            "REPLYHUB_ANALYSIS_MAX_NEW_TOKENS": "16", "DJANGO_SETTINGS_MODULE":
            "replyhub.settings"}  # fmt: skip
    os.environ.clear()
    os.environ.update(env)
    sys.path.insert(0, str(app))
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.utils import timezone

    from drafts.ingest import ingest_batch
    from drafts.models import Draft, Mailbox
    from tests.scaleout import customer_email

    call_command("migrate", verbosity=0)
    mailbox = Mailbox.default()
    reviewer = User.objects.create_user("bench-reviewer")
    mailbox.reviewers.add(reviewer)
    ingest_batch(mailbox, [customer_email(0)])
    log = (folder / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=app,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        first = Draft.objects.get()
        say("  waiting for the worker to load the model and draft the first email")
        drafted = Draft.objects.filter(pk=first.pk, status=Draft.READY)
        pagebench.wait(drafted.exists, "it", 600, POLL)
        ingest_batch(mailbox, [customer_email(n) for n in range(1, backlog + 1)])
        pagebench.wait(
            Draft.objects.filter(status=Draft.GENERATING).exists, "the backlog", 60, POLL
        )
        first.refresh_from_db()
        queued_before = Draft.objects.filter(status=Draft.QUEUED).count()
        asked, asked_at = time.monotonic(), timezone.now()
        assert first.regenerate(reviewer, instruction="shorter")
        say(f"  asked for a rewrite with {queued_before} drafts queued")
        version = first.version
        rewritten = Draft.objects.filter(pk=first.pk, status=Draft.READY, version__gt=version)
        pagebench.wait(rewritten.exists, "the rewrite", 3600, POLL)
        waited = time.monotonic() - asked
        first.refresh_from_db()
        ready = Draft.objects.filter(status=Draft.READY).exclude(pk=first.pk)
        written_meanwhile = ready.filter(ready_at__gte=asked_at).count()
        queued_after = Draft.objects.filter(status=Draft.QUEUED).count()
        say(f"  rewrite ready after {waited:.1f} s; {written_meanwhile} others written meanwhile")
        # The worker's pace: the model's seconds per draft (intent, analysis and reply).
        paces = [
            sum(v for k, v in d.timings.items() if k.endswith("_s"))
            for d in Draft.objects.filter(status=Draft.READY)
        ]
        return {
            "backlog": backlog,
            "queued_when_asked": queued_before,
            "rewrite_wait_s": round(waited, 1),
            "others_written_meanwhile": written_meanwhile,
            "queued_when_rewritten": queued_after,
            "seconds_per_draft": round(statistics.median(paces), 1),
            "rewritten_as_asked": first.generation.get("instruction") == "shorter",
        }
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backlog", type=int, default=20, help="emails arriving at once")
    parser.add_argument("--app", type=Path, default=ROOT, help="the ReplyHub tree to run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="replyhub-rewrite-wait-") as folder:
        result = measure(args.app.resolve(), args.backlog, Path(folder))
    print(json.dumps(result))
    print(
        f"| {result['queued_when_asked']} | {result['rewrite_wait_s']} s "
        f"| {result['others_written_meanwhile']} | {result['seconds_per_draft']} s |"
    )
    if not result["rewritten_as_asked"]:
        sys.exit("the rewrite did not record what was asked")


if __name__ == "__main__":
    main()

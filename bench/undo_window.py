"""The undo window's cost: approvals that each store a one-off schedule, and the I/O
worker's scheduler turning a peak's worth of them into send tasks.

    .venv/bin/python bench/undo_window.py --approvals 1000 --databases sqlite,postgres

With REPLYHUB_UNDO_SECONDS > 0 every approval stores a django-q2 schedule for the end of its
window, and the I/O worker's scheduler, every 30 s, turns the due ones into send tasks in
one pass. 1,000 approvals are what arrive in 30 s at about three times the average rate of
a million emails a day (35 a second), so one pass must take well under 30 s. For each
database (SQLite with the ORM broker; PostgreSQL with Redis, the scale-out shape) a fresh
one is migrated, --approvals drafts are made ready and approved one by one through
Draft.approve (timed), their windows are closed, and one scheduler pass is timed; the send
tasks it queued are counted in the broker. Prints the figures and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from datetime import timedelta

import pagebench
from pagebench import say

REDIS_URL = "redis://127.0.0.1:6379/0"


def measure(approvals: int) -> dict:
    """In the child: approve ``approvals`` drafts, then time one scheduler pass."""
    pagebench.prepare(lambda: 0, lambda: None, "drafts")
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.utils import timezone
    from django_q.brokers import get_broker
    from django_q.models import Schedule
    from django_q.scheduler import scheduler

    from drafts.models import Draft, Mailbox, Message

    mailbox = Mailbox.default()
    user = User.objects.create_user("bench-reviewer")
    messages = Message.objects.bulk_create(
        Message(
            mailbox=mailbox,
            raw=b"From: someone@example.com\r\nSubject: order\r\n\r\nWhere is my order?",
            sha256=f"{i:064x}",
            message_id=f"<{i}@bench.example>",
            subject=f"Order {i}",
            from_address=f"customer{i}@example.com",
            text="Where is my order?",
        )
        for i in range(approvals)
    )
    drafts = Draft.objects.bulk_create(
        Draft(
            message=m,
            mailbox=mailbox,
            status=Draft.READY,
            generated_text="Dear customer,\n\nIt ships today.\n\nAcme",
            reply_text="Dear customer,\n\nIt ships today.\n\nAcme",
            ready_at=timezone.now(),
        )
        for m in messages
    )
    broker = get_broker(settings.REPLYHUB_IO_QUEUE)
    broker.purge_queue()
    times = []
    started = time.monotonic()
    for number, draft in enumerate(drafts, 1):
        began = time.perf_counter()
        assert draft.approve(user, draft.reply_text)
        times.append((time.perf_counter() - began) * 1000)
        if number % 200 == 0:
            say(f"  approved {number:,} of {approvals:,}")
    approving = time.monotonic() - started
    due = Schedule.objects.filter(func="drafts.sending.send_outbox")
    assert due.count() == approvals, due.count()
    due.update(next_run=timezone.now())  # every window has closed
    # The minute sweeps are not counted: they are due in an hour.
    Schedule.objects.exclude(pk__in=due).update(next_run=timezone.now() + timedelta(hours=1))
    began = time.perf_counter()
    scheduler(broker=broker)
    scheduling = time.perf_counter() - began
    return {
        "approvals": approvals,
        "approve_p50_ms": round(statistics.median(times), 1),
        "approve_p95_ms": round(sorted(times)[int(0.95 * (len(times) - 1))], 1),
        "approvals_per_s": round(approvals / approving, 1),
        "scheduler_pass_s": round(scheduling, 2),
        "tasks_queued": broker.queue_size(),
        "schedules_left": due.count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--approvals", type=int, default=1000)
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.approvals)))
        return
    results = {}
    for database in args.databases.split(","):
        say(f"{database}: {args.approvals:,} approvals, then one scheduler pass")
        name = f"replyhub_bench_undo_{uuid.uuid4().hex[:8]}"
        # The scheduler takes the schedules of the cluster it runs as: the I/O worker's.
        env = {"REPLYHUB_QUEUE": name, "Q_CLUSTER_NAME": f"{name}-io", "REPLYHUB_IO_WORKERS": "2",
               "REPLYHUB_UNDO_SECONDS": "10"}  # fmt: skip
        if database == "postgres":
            env["REDIS_URL"] = REDIS_URL
        argv = ["--approvals", str(args.approvals)]
        results[database] = pagebench.run_child(__file__, database, name, argv, None, env)
    pagebench.print_machine("undo_window.py")
    print("\n| Database, broker | approvals | approve p50 / p95 | approvals/s "
          "| scheduler pass | send tasks queued |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for database, r in results.items():
        shape = "SQLite, ORM broker" if database == "sqlite" else "PostgreSQL, Redis"
        print(
            f"| {shape} | {r['approvals']:,} | {r['approve_p50_ms']} / {r['approve_p95_ms']} ms "
            f"| {r['approvals_per_s']} | {r['scheduler_pass_s']} s | {r['tasks_queued']:,} |"
        )
    if any(r["schedules_left"] or r["tasks_queued"] != r["approvals"] for r in results.values()):
        sys.exit("not every due schedule became one send task: " + json.dumps(results))


if __name__ == "__main__":
    main()

"""What counting reply targets in working hours costs: the admin's save that moves every open
draft's due time, the due time of each new email, and the stats' times to answer.

    .venv/bin/python bench/working_hours.py --drafts 10000 --databases sqlite,postgres

There is no SQL for "8 working hours later", so when a mailbox's working week, hours, time
zone or calendar days change, each draft still awaiting a decision gets its due time in
Python and is written back in batches, inside the admin's request. For each database a
fresh one is migrated, --drafts undecided drafts of one mailbox (arrivals spread over the
last 30 days) and a year of Chinese-style calendar days (holidays and make-up days) are
stored; then timed: turning working hours on (a Mailbox save), adding one holiday, and the
due time of one new email (the calendar read plus the arithmetic), p50/p95 over 200 calls.
Then every draft is approved (the day before, an hour to a day after its arrival) and the
stats' count of those decisions (drafts.daily.tally_decisions, what summarising closed days
runs) is timed with the mailbox counting working hours and with it counting calendar hours.
Prints the figures and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from datetime import date, timedelta

import pagebench
from pagebench import say


def measure(count: int) -> dict:
    """In the child: store ``count`` open drafts and time the reschedules."""
    pagebench.prepare(lambda: 0, lambda: None, "drafts")
    from django.utils import timezone

    from drafts.models import CalendarDay, Draft, Mailbox, Message

    mailbox = Mailbox.default()
    mailbox.reply_within_hours = 8
    mailbox.save()
    now = timezone.now()
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
        for i in range(count)
    )
    Draft.objects.bulk_create(
        Draft(message=m, mailbox=mailbox, status=Draft.READY, intent="inquiry", reply_text="Hi")
        for m in messages
    )
    # Arrivals spread over the last 30 days, as a backlog would be.
    for n, pk in enumerate(Draft.objects.values_list("pk", flat=True)):
        if n % 1000 == 0:
            batch = []
        batch.append(pk)
        if len(batch) == 1000 or n == count - 1:
            Draft.objects.filter(pk__in=batch).update(
                created_at=now - timedelta(minutes=(n * 4321) % (30 * 24 * 60))
            )
    say(f"  stored {count:,} open drafts")
    year = now.year
    for month, first, days in [(1, 1, 3), (2, 6, 8), (4, 4, 3), (5, 1, 5), (6, 9, 3), (9, 15, 3),
                               (10, 1, 7)]:  # fmt: skip
        CalendarDay.objects.create(
            name=f"holiday {month}",
            first_day=date(year, month, first),
            last_day=date(year, month, first + days - 1),
        )
    for month, day in [(1, 30), (2, 20), (4, 26), (9, 26), (10, 9)]:
        CalendarDay.objects.create(name="调休", first_day=date(year, month, day), kind="workday")

    began = time.perf_counter()
    mailbox.working_hours_only = True
    mailbox.save()
    turning_on = time.perf_counter() - began
    began = time.perf_counter()
    CalendarDay.objects.create(name="extra", first_day=date(year, 12, 24))
    adding_day = time.perf_counter() - began
    sample = Draft.objects.order_by("?").first()
    assert sample.due_at == mailbox.due_at(sample.intent, sample.created_at), "not moved"

    times = []
    for _ in range(200):
        began = time.perf_counter()
        mailbox.due_at("inquiry", timezone.now())
        times.append((time.perf_counter() - began) * 1000)
    tally = {}
    for working_hours in (True, False):
        Mailbox.objects.filter(pk=mailbox.pk).update(working_hours_only=working_hours)
        tally[working_hours] = time_tally(count)
    return {
        "drafts": count,
        "turning_on_s": round(turning_on, 2),
        "adding_day_s": round(adding_day, 2),
        **{f"due_{k}": v for k, v in pagebench.timings(times).items()},
        "tally_working_s": tally[True],
        "tally_calendar_s": tally[False],
    }


def time_tally(count: int) -> float:
    """Seconds to count ``count`` approvals of yesterday for the stats."""
    from django.utils import timezone

    from drafts import daily
    from drafts.models import Draft

    yesterday = timezone.localdate() - timedelta(days=1)
    start = daily.midnight(yesterday)
    drafts = list(Draft.objects.only("pk"))
    for n, draft in enumerate(drafts):  # decided yesterday, an hour to a day after arriving
        draft.status = Draft.APPROVED
        draft.decided_at = start + timedelta(seconds=(n * 7919) % 86400)
        draft.created_at = draft.decided_at - timedelta(seconds=3600 + (n * 104729) % 82800)
    Draft.objects.bulk_update(drafts, ["status", "decided_at", "created_at"], batch_size=1000)
    began = time.perf_counter()
    tallies = daily.tally_decisions(yesterday, yesterday)
    seconds = time.perf_counter() - began
    assert sum(t.decided for t in tallies[yesterday]["mailbox"].values()) == count
    return round(seconds, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--drafts", type=int, default=10000)
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.drafts)))
        return
    results = {}
    for database in args.databases.split(","):
        say(f"{database}: {args.drafts:,} open drafts, then working hours turned on")
        name = f"replyhub_bench_hours_{uuid.uuid4().hex[:8]}"
        argv = ["--drafts", str(args.drafts)]
        results[database] = pagebench.run_child(__file__, database, name, argv, None)
    pagebench.print_machine("working_hours.py")
    print("\n| Database | open drafts | turning working hours on | adding a holiday "
          "| a new email's due time, p50 / p95 "
          "| stats count, working / calendar hours |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for database, r in results.items():
        print(
            f"| {'SQLite' if database == 'sqlite' else 'PostgreSQL'} | {r['drafts']:,} "
            f"| {r['turning_on_s']} s | {r['adding_day_s']} s "
            f"| {r['due_p50_ms']} / {r['due_p95_ms']} ms "
            f"| {r['tally_working_s']} / {r['tally_calendar_s']} s |"
        )


if __name__ == "__main__":
    main()

"""Queue page speed with 100,000 messages: server time per request, SQLite and PostgreSQL.

    .venv/bin/python bench/review_queue.py --messages 100000 --databases sqlite,postgres

For each database, a fresh one (a new REPLYHUB_VAR_DIR for SQLite; `replyhub_bench_queue`
on postgres://postgres@127.0.0.1:5432/ for PostgreSQL, dropped first and at the end) is
migrated and seeded with --messages inbound messages in two mailboxes, each with a draft
(80% awaiting review, the rest spread over the other statuses; mixed intents, languages
and flags; bodies of about 1 KB in English and Chinese; the first mailbox has a 24-hour
reply target, its drafts due from 30 hours ago to 24 hours ahead). Then the queue page is requested
through Django's test client, in process, as a supervisor and as a reviewer of one
mailbox, unfiltered and with each filter, and the server time of every request is
recorded (--requests per case, after two warm-up requests); then a draft's page, which
lists the customer's other conversations, for a customer who wrote once and one who wrote
every 50th email ("drafts listed" is then the length of that history). Prints
p50/p95/max per case and a Markdown table. Target: p95 under 100 ms.
"""

from __future__ import annotations

import json
import random
import time
from datetime import timedelta

import pagebench
from pagebench import say

CASES = [
    ("supervisor", {}),
    ("supervisor", {"tab": "rejected"}),
    ("supervisor", {"intent": "complaint"}),
    ("supervisor", {"language": "zh", "flagged": "1"}),
    ("supervisor", {"page": "40"}),
    ("supervisor", {"order": "newest"}),
    ("supervisor", {"order": "due"}),
    ("supervisor", {"overdue": "1"}),
    ("supervisor", {"overdue": "1", "order": "newest"}),
    ("supervisor", {"q": "SmartDesk"}),
    ("supervisor", {"q": "customer4242@example.com"}),
    ("supervisor", {"q": "处理发票"}),
    ("reviewer", {}),
    ("reviewer", {"mine": "1"}),
    ("reviewer", {"order": "due", "overdue": "1"}),
    ("reviewer", {"q": "发票"}),
    ("reviewer", {"q": "stopped syncing"}),
]


# The draft page, with the customer's other conversations: of one who wrote once, and of
# one who wrote every 50th email (2,000 of 100,000).
FREQUENT = "frequent@example.com"
DRAFT_CASES = [
    ("supervisor", ""),  # the first customer who wrote once
    ("supervisor", FREQUENT),
    ("reviewer", FREQUENT),
]


def seed(count: int) -> None:
    """Two mailboxes, ``count`` messages with drafts, users; in batches, with progress."""
    from django.contrib.auth.models import User
    from django.utils import timezone

    from drafts.models import Draft, Mailbox, Message, StaffProfile, Thread

    rng = random.Random(20261126)
    support = Mailbox.default()
    support.reply_within_hours = 24  # due times from 30 h ago (overdue) to 24 h ahead
    support.save()
    sales = Mailbox.objects.create(name="sales", address="sales@acme.example")  # no target
    boss = User.objects.create_user("boss", password="x")
    StaffProfile.objects.create(user=boss, role=StaffProfile.SUPERVISOR)
    reviewer = User.objects.create_user("rita", password="x")
    support.reviewers.add(reviewer)
    products = ["Acme CRM", "SmartDesk 3", "DataSync Pro", "EdgeBox 200"]
    intents = ["inquiry", "complaint", "partnership", "technical_support", "demo_booking"]
    statuses = [Draft.REJECTED, Draft.SENT, Draft.FAILED, Draft.QUEUED]
    now = timezone.now()
    batch = 2000
    started = time.monotonic()
    for first in range(0, count, batch):
        size = min(batch, count - first)
        mailboxes = [support if rng.random() < 0.7 else sales for _ in range(size)]
        threads = Thread.objects.bulk_create(
            [
                Thread(
                    mailbox=m, subject=f"t{first + i}", customer_address=f"c{first + i}@x.example"
                )
                for i, m in enumerate(mailboxes)
            ]
        )
        messages = []
        for i, (mailbox, thread) in enumerate(zip(mailboxes, threads, strict=True)):
            n = first + i
            chinese = rng.random() < 0.5
            product = rng.choice(products)
            text = (
                f"您好，我们的{product}出现问题，订单号 AC{n:08d}，请尽快处理发票。" * 12
                if chinese
                else f"Hello, our {product} stopped syncing after the update, order {n}. " * 12
            )
            messages.append(
                Message(
                    mailbox=mailbox,
                    thread=thread,
                    direction=Message.INBOUND,
                    raw=b"",
                    sha256=f"{n:064x}",
                    message_id=f"<{n}@bench.example>",
                    subject=f"{product} 问题 {n}" if chinese else f"Question about {product} #{n}",
                    from_name=f"Customer {n}",
                    # One customer in 50 emails is the same one: a draft page's history.
                    from_address=FREQUENT if n % 50 == 7 else f"customer{n}@example.com",
                    date=now,
                    size=len(text),
                    text=text,
                )
            )
        for message in messages:  # bulk_create skips save(), which fills it
            message.search_text = message.searchable_text()
        messages = Message.objects.bulk_create(messages)
        Draft.objects.bulk_create(
            [
                Draft(
                    message=m,
                    mailbox=m.mailbox,
                    status=Draft.READY if rng.random() < 0.8 else rng.choice(statuses),
                    intent=rng.choice(intents),
                    confidence=round(rng.random(), 3),
                    language="zh" if "问题" in m.subject else "en",
                    flags=["too_long"] if rng.random() < 0.1 else [],
                    reply_text="Dear customer, thank you.",
                    generated_text="Dear customer, thank you.",
                    assigned_to=reviewer if rng.random() < 0.05 else None,
                    due_at=(
                        now + timedelta(hours=rng.uniform(-30, 24))
                        if m.mailbox == support
                        else None
                    ),
                )
                for m in messages
            ]
        )
        say(f"  seeded {first + size:,}/{count:,} in {time.monotonic() - started:.0f} s")


def measure(requests: int) -> list[dict]:
    """Server time of the queue page per case: p50, p95, max in milliseconds."""
    from django.contrib.auth.models import User
    from django.test import Client

    from drafts.models import Draft, Mailbox

    def timed(who: str, path: str, query: dict) -> tuple[dict, object]:
        client = Client()
        client.force_login(User.objects.get(username="boss" if who == "supervisor" else "rita"))
        times = []
        for i in range(requests + 2):
            started = time.perf_counter()
            response = client.get(path, query)
            elapsed = (time.perf_counter() - started) * 1000
            assert response.status_code == 200, response.status_code
            if i >= 2:
                times.append(elapsed)
        times.sort()
        return pagebench.timings(times), response

    rows = []
    for who, query in CASES:
        timings, response = timed(who, "/", query)
        row = {
            "user": who,
            "query": "&".join(f"{k}={v}" for k, v in query.items()) or "(none)",
            **timings,
            "listed": response.context["page"].paginator.count,
        }
        rows.append(row)
        say(json.dumps(row, ensure_ascii=False))
    support = Mailbox.default()
    for who, address in DRAFT_CASES:
        ready = Draft.objects.filter(mailbox=support, status=Draft.READY).order_by("id")
        if address:
            ready = ready.filter(message__from_address=address)
        else:
            ready = ready.exclude(message__from_address=FREQUENT)
        draft = ready.select_related("message").first()
        timings, response = timed(who, f"/drafts/{draft.pk}/", {})
        row = {
            "user": who,
            "query": f"draft page: {draft.message.from_address}",
            **timings,
            "listed": response.context["customer_history_count"],
        }
        rows.append(row)
        say(json.dumps(row, ensure_ascii=False))
    return rows


def main() -> None:
    pagebench.main(
        pagebench.PageBench(
            script=__file__,
            count="messages",
            default_requests=40,
            database="replyhub_bench_queue",
            model="Message",
            seed=seed,
            measure=measure,
            header="| database | user | filters | p50 ms | p95 ms | max ms | drafts listed |",
            row=lambda db, r: (
                f"| {db} | {r['user']} | `{r['query']}` | {r['p50_ms']} | "
                f"{r['p95_ms']} | {r['max_ms']} | {r['listed']:,} |"
            ),
            text_columns=3,
        ),
        __doc__,
    )


if __name__ == "__main__":
    main()

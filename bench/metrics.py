"""/metrics scrape time with 100,000 drafts: SQLite and PostgreSQL.

    .venv/bin/python bench/metrics.py --drafts 100000 --databases sqlite,postgres

For each database, a fresh one (see pagebench.py) is migrated and seeded with --drafts
inbound messages in two mailboxes (raw bytes and bodies of about 2 KB, so that a scan of
the table would cost what it costs in production), each with a draft: most decided over
the last 30 days (approved and sent, or rejected) with their review events (an edit on
some, the decision on all) and outbox records, 1,000 ready within the last hour with their
model timings, the rest waiting in the queue. Then /metrics is requested through Django's
test client, in process (--requests times, after two warm-up requests), and the server
time of each request is recorded. Prints p50/p95/max per database and a Markdown table.
"""

from __future__ import annotations

import json
import random
import time
from datetime import timedelta

import pagebench
from pagebench import say

RECENT = 1000  # drafts that became ready within the last hour


def seed(count: int) -> None:
    """``count`` messages with drafts, events and outbox records; in batches, with progress."""
    from django.utils import timezone

    from drafts.models import Draft, Mailbox, Message, ReviewEvent, Thread
    from drafts.outbox import Outbox
    from inference.drafting import INTENTS

    rng = random.Random(20261126)
    support = Mailbox.default()
    sales = Mailbox.objects.create(name="sales", address="sales@acme.example")
    body = ("Hello, I have a question about my order and the invoice that came with it. " * 14)[
        :1000
    ]
    raw = (b"From: someone@example.com\r\nSubject: order\r\n\r\n" + body.encode()) * 2
    reply = "Dear customer,\n\nThank you for your message. " * 10
    now = timezone.now()
    batch = 2000
    started = time.monotonic()
    for first in range(0, count, batch):
        size = min(batch, count - first)
        mailboxes = [support if rng.random() < 0.7 else sales for _ in range(size)]
        threads = Thread.objects.bulk_create(
            Thread(mailbox=m, subject=f"t{first + i}", customer_address=f"c{first + i}@x.example")
            for i, m in enumerate(mailboxes)
        )
        messages = Message.objects.bulk_create(
            Message(
                mailbox=mailbox,
                thread=thread,
                raw=raw,
                sha256=f"{first + i:064x}",
                message_id=f"<{first + i}@bench.example>",
                subject=f"Question #{first + i}",
                from_address=f"customer{first + i}@example.com",
                date=now,
                size=len(raw),
                text=body,
                model_text=body,
            )
            for i, (mailbox, thread) in enumerate(zip(mailboxes, threads, strict=True))
        )
        drafts = []
        for i, message in enumerate(messages):
            number = first + i
            if number < RECENT:
                ready_at = now - timedelta(seconds=rng.uniform(0, 3500))
            else:
                ready_at = now - timedelta(seconds=rng.uniform(3700, 30 * 86400))
            draft = Draft(
                message=message,
                mailbox=message.mailbox,
                intent=rng.choice(list(INTENTS)),
                language="en",
                generated_text=reply,
                reply_text=reply,
                ready_at=ready_at,
                prompt_tokens=600,
                completion_tokens=rng.randint(60, 200),
                timings={
                    "intent_s": rng.uniform(0.5, 2),
                    "analysis_s": rng.uniform(2, 8),
                    "reply_s": rng.uniform(5, 30),
                    "batch_size": 1,
                },
                generation={"engine": "transformers", "model": "bench", "temperature": 0.7},
            )
            roll = rng.random()
            if number < RECENT or roll < 0.05:
                draft.status = Draft.READY
            elif roll < 0.08:
                draft.status, draft.ready_at = Draft.QUEUED, None
            elif roll < 0.3:
                draft.status, draft.decided_at = Draft.REJECTED, ready_at + timedelta(minutes=5)
            else:
                draft.status, draft.decided_at = Draft.SENT, ready_at + timedelta(minutes=5)
            drafts.append(draft)
        Draft.objects.bulk_create(drafts)
        events, outbox = [], []
        for draft in drafts:
            if draft.status == Draft.REJECTED:
                events.append(ReviewEvent(draft=draft, action="reject", text_before=reply))
            elif draft.status == Draft.SENT:
                if rng.random() < 0.4:
                    events.append(
                        ReviewEvent(draft=draft, action="edit", text_before=reply, text_after=reply)
                    )
                events.append(
                    ReviewEvent(draft=draft, action="approve", text_before=reply, text_after=reply)
                )
                events.append(ReviewEvent(draft=draft, action="sent", note="250 OK"))
                outbox.append(
                    Outbox(
                        draft=draft,
                        mailbox=draft.mailbox,
                        message_id=f"<reply-{draft.message_id}@bench.example>",
                        sender="support@acme.example",
                        recipient="customer@example.com",
                        raw=raw,
                        state=Outbox.SENT,
                        attempts=1,
                        sent_at=draft.decided_at,
                    )
                )
        ReviewEvent.objects.bulk_create(events)
        Outbox.objects.bulk_create(outbox)
        say(f"  seeded {first + size:,}/{count:,} in {time.monotonic() - started:.0f} s")


def measure(requests: int) -> list[dict]:
    """Server time of /metrics: p50, p95, max in milliseconds, and the queries it made."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from drafts.models import Draft

    client = Client()
    times = []
    for i in range(requests + 2):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get("/metrics")
            elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, response.status_code
        if i >= 2:
            times.append(elapsed)
    row = {
        "case": "GET /metrics",
        **pagebench.timings(times),
        "queries": len(queries),
        "drafts": Draft.objects.count(),
    }
    say(json.dumps(row))
    return [row]


def main() -> None:
    pagebench.main(
        pagebench.PageBench(
            script=__file__,
            count="drafts",
            default_requests=20,
            database="replyhub_bench_metrics",
            model="Draft",
            seed=seed,
            measure=measure,
            header="| database | drafts | p50 ms | p95 ms | max ms | queries |",
            row=lambda db, r: (
                f"| {db} | {r['drafts']:,} | {r['p50_ms']} | {r['p95_ms']} | "
                f"{r['max_ms']} | {r['queries']} |"
            ),
            text_columns=1,
        ),
        __doc__,
    )


if __name__ == "__main__":
    main()

"""Stats page speed with 100,000 decided drafts: server time per request, SQLite and PostgreSQL.

    .venv/bin/python bench/stats.py --drafts 100000 --databases sqlite,postgres

For each database, a fresh one (a new REPLYHUB_VAR_DIR for SQLite; `replyhub_bench_stats`
on postgres://postgres@127.0.0.1:5432/ for PostgreSQL, dropped first and at the end) is
migrated and seeded with --drafts drafts decided over the last 90 days (five reviewers, every
intent, three template versions, two mailboxes; 30% rejected with every reason, the rest
approved, 40% of those after edits, most sent, some failed; the emails arrived an hour
before their drafts were ready, and one mailbox has a reply target). Then the stats page is
requested through Django's test client, in process, as a supervisor: the default range (30
days), a 90-day range and one CSV export, and the server time of every request is recorded
(--requests per case, after two warm-up requests). The very first request, which sums up
the closed days into daily totals (drafts/daily.py), is timed once on its own.
Prints p50/p95/max per case and a Markdown table. Target: p95 under 300 ms.
"""

from __future__ import annotations

import json
import random
import time
from datetime import timedelta

import pagebench
from pagebench import say

DAYS = 90
ARRIVAL_TO_READY = timedelta(hours=1)  # the model's queue


def cases() -> list[tuple[str, dict[str, str]]]:
    from django.utils import timezone

    today = timezone.localdate()
    days90 = {"from": (today - timedelta(days=DAYS - 1)).isoformat(), "to": today.isoformat()}
    return [
        ("last 30 days (default)", {}),
        ("last 90 days", days90),
        ("CSV per reviewer, 90 days", {**days90, "format": "csv", "table": "reviewer"}),
    ]


def seed(count: int) -> None:
    """Two mailboxes, ``count`` decided drafts over DAYS days; in batches, with progress."""
    from django.contrib.auth.models import User
    from django.db.models import F
    from django.utils import timezone

    from drafts.models import (
        Draft,
        Mailbox,
        Message,
        PromptTemplate,
        StaffProfile,
        Thread,
        edit_distance,
    )
    from inference.drafting import INTENTS

    rng = random.Random(20261126)
    support = Mailbox.default()
    support.reply_within_hours, support.complaints_within_hours = 24, 4
    support.save()
    sales = Mailbox.objects.create(name="sales", address="sales@acme.example")
    boss = User.objects.create_user("boss", password="x")
    StaffProfile.objects.create(user=boss, role=StaffProfile.SUPERVISOR)
    reviewers = [User.objects.create_user(name, password="x") for name in
                 ("rita", "sam", "tao", "uma", "wei")]  # fmt: skip
    prompts = {"system_prompt": "s", "analysis_prompt": "a", "reply_prompt": "{email}"}
    PromptTemplate.objects.filter(name="bench").delete()
    templates = [
        PromptTemplate.objects.create(name="bench", version=v, is_active=v == 3, **prompts)
        for v in (1, 2, 3)
    ]
    generated = "Dear customer,\n\nThank you for your message about {}. We will reply soon.\n\nAcme"
    edits = [
        "Dear customer,\n\nThank you. Your {} order ships tomorrow.\n\nAcme",
        "Hello,\n\nThanks for writing about {}; a colleague will call you today.\n\nBest, Acme",
        "Dear customer,\n\nThank you for your message about {}. We replied by phone.\n\nAcme",
    ]
    products = ["Acme CRM", "SmartDesk 3", "DataSync Pro", "EdgeBox 200"]
    reasons = [reason for reason, _label in Draft.REJECT_REASONS]
    approved = [Draft.SENT] * 17 + [Draft.APPROVED, Draft.SEND_FAILED, Draft.SEND_UNCERTAIN]
    now = timezone.now()
    batch = 2000
    started = time.monotonic()
    distances: dict[tuple[str, str], float] = {}
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
        messages = Message.objects.bulk_create(
            [
                Message(
                    mailbox=mailbox,
                    thread=thread,
                    direction=Message.INBOUND,
                    raw=b"",
                    sha256=f"{first + i:064x}",
                    message_id=f"<{first + i}@bench.example>",
                    subject=f"Question #{first + i}",
                    from_address=f"customer{first + i}@example.com",
                    date=now,
                    size=40,
                    text="Hello, a question about my order.",
                )
                for i, (mailbox, thread) in enumerate(zip(mailboxes, threads, strict=True))
            ]
        )
        drafts = []
        for m in messages:
            decided_at = now - timedelta(seconds=rng.uniform(0, DAYS * 86400))
            ready_at = decided_at - timedelta(seconds=rng.expovariate(1 / 900))
            received = ready_at - ARRIVAL_TO_READY
            intent = rng.choice(list(INTENTS))
            product = rng.choice(products)
            text = generated.format(product)
            draft = Draft(
                message=m,
                mailbox=m.mailbox,
                intent=intent,
                language="en",
                generated_text=text,
                reply_text=text,
                template=rng.choice(templates),
                ready_at=ready_at,
                decided_at=decided_at,
                decided_by=rng.choice(reviewers),
                due_at=m.mailbox.due_at(intent, received),
            )
            if rng.random() < 0.3:
                draft.status = Draft.REJECTED
                draft.reject_reason = rng.choice(reasons)
            else:
                draft.status = rng.choice(approved)
                if rng.random() < 0.4:
                    draft.reply_text = rng.choice(edits).format(product)
                key = (draft.generated_text, draft.reply_text)
                if key not in distances:
                    distances[key] = edit_distance(*key)
                draft.edit_distance = distances[key]
            drafts.append(draft)
        Draft.objects.bulk_create(drafts)
        # created_at (the arrival) is set on insert; the emails came in before their drafts.
        Draft.objects.filter(pk__in=[d.pk for d in drafts]).update(
            created_at=F("ready_at") - ARRIVAL_TO_READY
        )
        say(f"  seeded {first + size:,}/{count:,} in {time.monotonic() - started:.0f} s")


def measure(requests: int) -> list[dict]:
    """Server time of the stats page per case: p50, p95, max in milliseconds."""
    from django.contrib.auth.models import User
    from django.test import Client

    from drafts import daily

    rows = []
    # The first page after the seed sums up the closed days (the nightly schedule normally
    # has): timed once, on its own.
    daily.forget_all()
    client = Client()
    client.force_login(User.objects.get(username="boss"))
    name, query = cases()[1]
    started = time.perf_counter()
    assert client.get("/stats/", query).status_code == 200
    cold = round((time.perf_counter() - started) * 1000, 1)
    decided = sum(daily.StatsDay.objects.values_list("decisions", flat=True))
    row = {"case": f"{name}, first request (sums up 89 days)", "p50_ms": cold, "p95_ms": cold,
           "max_ms": cold, "decided": decided}  # fmt: skip
    rows.append(row)
    say(json.dumps(row, ensure_ascii=False))
    for name, query in cases():
        client = Client()
        client.force_login(User.objects.get(username="boss"))
        times = []
        for i in range(requests + 2):
            started = time.perf_counter()
            response = client.get("/stats/", query)
            elapsed = (time.perf_counter() - started) * 1000
            assert response.status_code == 200, response.status_code
            if i >= 2:
                times.append(elapsed)
        times.sort()
        if response.context:
            decided = sum(r.decided for r in response.context["rows"])
        else:  # the CSV: its rows after the header
            decided = sum(int(line.split(",")[1]) for line in response.content.decode().split()[1:]
                          if line.count(",") > 2)  # fmt: skip
        row = {
            "case": name,
            **pagebench.timings(times),
            "decided": decided,
        }
        rows.append(row)
        say(json.dumps(row, ensure_ascii=False))
    return rows


def main() -> None:
    pagebench.main(
        pagebench.PageBench(
            script=__file__,
            count="drafts",
            default_requests=20,
            database="replyhub_bench_stats",
            model="Draft",
            seed=seed,
            measure=measure,
            header="| database | case | p50 ms | p95 ms | max ms | drafts decided in range |",
            row=lambda db, r: (
                f"| {db} | {r['case']} | {r['p50_ms']} | {r['p95_ms']} | "
                f"{r['max_ms']} | {r['decided']:,} |"
            ),
            text_columns=2,
        ),
        __doc__,
    )


if __name__ == "__main__":
    main()

"""Drives a ReplyHub deployment's database from outside, for the scale-out test and bench.

    python -m tests.scaleout setup
    python -m tests.scaleout ingest 200
    python -m tests.scaleout approve alice
    python -m tests.scaleout report

Each command runs in its own process with the environment it is given (DATABASE_URL,
REDIS_URL, REPLYHUB_QUEUE), as an operator's management commands would, and prints one
JSON object. The test process itself stays on its own test database.
"""

from __future__ import annotations

import json
import os
import random
import sys
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
USERS = ["alice", "bob"]

# Customer emails of every intent, English and Chinese; {n} makes each one unique.
EMAILS = [
    ("Price for 50 licences ({n})", "Hello,\n\nWhat would 50 licences of Acme Cloud cost? "
     "Request {n}.\n\nBest regards,\nOlivia Brown"),
    ("退款申请 {n}", "您好：\n\n我们上周的订单 {n} 被重复扣款，请尽快退款。\n\n李娜"),
    ("Partnership proposal {n}", "Dear team,\n\nWe resell cloud software in Germany and would "
     "like to partner with you (ref {n}).\n\nKlaus Weber"),
    ("登录失败 {n}", "你好，\n\n从昨天开始我们无法登录后台，提示错误 500。工单 {n}。\n\n王强"),
    ("Demo next Tuesday? ({n})", "Hi,\n\nCould we book a product demo next Tuesday at 10:00? "
     "Ref {n}.\n\nThanks,\nMaria Garcia"),
]  # fmt: skip


def customer_email(n: int) -> bytes:
    """The ``n``-th customer email: unique Message-ID, subject and text."""
    subject, text = EMAILS[n % len(EMAILS)]
    message = EmailMessage()
    message["From"] = f"Customer {n} <customer{n}@example.com>"
    message["To"] = "support@acme.example"
    message["Subject"] = subject.format(n=n)
    message["Message-ID"] = make_msgid(f"scale{n}", domain="example.com")
    message["Date"] = format_datetime(datetime.now().astimezone())
    message.set_content(text.format(n=n))
    return message.as_bytes()


def setup() -> dict:
    from django.contrib.auth.models import User

    from drafts.models import Mailbox

    mailbox = Mailbox.default()
    for name in USERS:
        user, _ = User.objects.get_or_create(username=name)
        mailbox.reviewers.add(user)
    return {"mailbox": mailbox.pk, "users": USERS}


def ingest(count: int) -> dict:
    from drafts.ingest import ingest_batch
    from drafts.models import Mailbox

    mailbox, created = Mailbox.default(), 0
    for start in range(0, count, 50):
        raws = [customer_email(n) for n in range(start, min(start + 50, count))]
        created += sum(new for _message, new in ingest_batch(mailbox, raws))
    return {"ingested": created}


def approve(username: str) -> dict:
    """Approve every draft awaiting review, in a random order, until none is left.

    Two of these running at once race for the same drafts: each approval is won by one.
    """
    from django.contrib.auth.models import User

    from drafts.models import Draft

    user = User.objects.get(username=username)
    won = lost = 0
    while ready := list(Draft.objects.filter(status=Draft.READY).values_list("pk", flat=True)):
        random.shuffle(ready)
        for pk in ready:
            draft = Draft.objects.get(pk=pk)
            if draft.approve(user, draft.reply_text or "Thank you, we are on it.\n\nAcme"):
                won += 1
            else:
                lost += 1
    return {"approved": won, "lost": lost}


def report() -> dict:
    from django.db.models import Count, Max

    from drafts.models import Draft, Message, Outbox, ReviewEvent

    statuses = dict(Draft.objects.order_by().values_list("status").annotate(n=Count("id")))
    outbox = dict(Outbox.objects.order_by().values_list("state").annotate(n=Count("id")))
    approvals = ReviewEvent.objects.filter(action=ReviewEvent.APPROVE).order_by()
    per_draft = approvals.values("draft").annotate(n=Count("id")).aggregate(most=Max("n"))
    deliveries = Outbox.objects.order_by().values("draft").annotate(n=Count("id"))
    return {
        "messages": Message.objects.count(),
        "drafts": Draft.objects.count(),
        "messages_without_draft": Message.objects.filter(draft__isnull=True).count(),
        "statuses": statuses,
        # A draft claimed and stored exactly once is at version 3 (created 1, claimed 2, stored 3).
        "ready_not_at_version_3": Draft.objects.filter(status=Draft.READY)
        .exclude(version=3)
        .count(),
        "workers": sorted(
            set(
                Draft.objects.exclude(generation__worker=None).values_list(
                    "generation__worker", flat=True
                )
            )
        ),
        "approvals": approvals.count(),
        "most_approvals_of_one_draft": per_draft["most"] or 0,
        "outbox": outbox,
        "most_outbox_records_of_one_draft": deliveries.aggregate(most=Max("n"))["most"] or 0,
        "sent_message_ids": list(
            Outbox.objects.filter(state=Outbox.SENT).values_list("message_id", flat=True)
        ),
    }


def main(argv: list[str]) -> None:
    import django

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "replyhub.settings")
    django.setup()
    command, *args = argv
    commands = {"setup": setup, "ingest": lambda: ingest(int(args[0])),
                "approve": lambda: approve(args[0]), "report": report}  # fmt: skip
    print(json.dumps(commands[command]()))


if __name__ == "__main__":
    main(sys.argv[1:])

"""The draft page lists the customer's other conversations, as far as the reviewer may see."""

from __future__ import annotations

from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import pytest
from django.urls import reverse
from django.utils import timezone

from drafts import draft_views
from drafts.ingest import ingest_message
from drafts.models import Draft, Mailbox, Message

pytestmark = pytest.mark.django_db


def email_from(address: str, subject: str, days_ago: int, reply_to: Message | None = None) -> bytes:
    message = EmailMessage()
    message["From"] = f"Li Wei <{address}>"
    message["To"] = "support@acme.example"
    message["Subject"] = subject
    message["Date"] = format_datetime(timezone.now() - timedelta(days=days_ago))
    message["Message-ID"] = make_msgid(domain="example.cn")
    if reply_to is not None:
        message["In-Reply-To"] = reply_to.message_id
    message.set_content(f"{subject}. Please help.")
    return message.as_bytes()


def received(mailbox: Mailbox, subject: str, days_ago: int, **kw) -> Message:
    message, _ = ingest_message(mailbox, email_from("li.wei@example.cn", subject, days_ago, **kw))
    # Stored in the order the customer wrote them.
    Message.objects.filter(pk=message.pk).update(
        received_at=timezone.now() - timedelta(days=days_ago)
    )
    return Message.objects.get(pk=message.pk)


def history(client, draft: Draft) -> tuple[list[str], int, str]:
    response = client.get(reverse("draft", args=[draft.pk]))
    shown = [m.subject for m in response.context["customer_history"]]
    return shown, response.context["customer_history_count"], response.text


def test_the_customers_other_conversations_are_listed_newest_first(alice, alice_client, mailbox):
    invoice = received(mailbox, "Invoice 2024-17 is wrong", 30)
    received(mailbox, "Login fails", 10)
    followup = received(mailbox, "Re: Invoice 2024-17 is wrong", 9, reply_to=invoice)
    current = received(mailbox, "Export broken", 0)
    ingest_message(mailbox, email_from("someone.else@example.cn", "Other customer", 2))
    Draft.objects.filter(pk=invoice.draft.pk).update(status=Draft.READY)
    assert Draft.objects.get(pk=invoice.draft.pk).reject(alice, "needs_human")

    shown, count, page = history(alice_client, current.draft)
    # Newest first; the follow-up is its own row (another thread than the current email).
    assert shown == ["Re: Invoice 2024-17 is wrong", "Login fails", "Invoice 2024-17 is wrong"]
    assert count == 3
    assert "Earlier conversations with this customer (3)" in page
    assert f'href="{reverse("draft", args=[invoice.draft.pk])}"' in page
    assert '<span class="status rejected">Rejected</span>' in page

    # The same thread's messages are shown as the thread, not again as history.
    shown, _, _ = history(alice_client, followup.draft)
    assert "Invoice 2024-17 is wrong" not in shown


def test_another_teams_mail_from_the_customer_is_not_shown(alice_client, mailbox):
    sales = Mailbox.objects.create(name="sales", address="sales@acme.example")
    received(sales, "Quote for 50 seats", 5)
    current = received(mailbox, "Export broken", 0)
    assert history(alice_client, current.draft)[:2] == ([], 0)
    assert "Earlier conversation" not in history(alice_client, current.draft)[2]


def test_a_long_history_shows_the_newest_and_links_to_all(alice_client, mailbox, monkeypatch):
    monkeypatch.setattr(draft_views, "CUSTOMER_HISTORY", 2)
    for day in (4, 3, 2):
        received(mailbox, f"Question {day}", day)
    current = received(mailbox, "Export broken", 0)
    shown, count, page = history(alice_client, current.draft)
    assert (shown, count) == (["Question 2", "Question 3"], 3)
    assert "Earlier conversations with this customer (3)" in page
    assert f'href="{reverse("queue")}?q=li.wei%40example.cn"' in page

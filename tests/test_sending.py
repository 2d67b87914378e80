"""Sending approved replies to a real SMTP server: proper reply headers, exactly once."""

from __future__ import annotations

import pytest

from drafts.models import Draft, ReviewEvent
from drafts.sending import HeaderInjectionError, build_reply, reply_subject, send_draft
from tests.conftest import free_port, make_ready_draft

pytestmark = pytest.mark.django_db


def approved_draft(mailbox, user, text="Dear Olivia,\n\nThe price is 99 per seat.\n\nAcme"):
    draft = make_ready_draft(mailbox)
    assert draft.approve(user, text)
    return draft


def test_it_sends_a_proper_reply(mailbox, alice, smtp_server):
    draft = approved_draft(mailbox, alice)
    assert send_draft(draft.pk) == "sent"
    [(recipients, sent)] = smtp_server.received
    assert recipients == ["purchasing@northwind.example"]  # Reply-To wins over From
    assert sent["To"] == "purchasing@northwind.example"
    assert sent["From"] == "Acme Support <support@acme.example>"
    assert sent["Subject"] == "Re: Pricing for Acme CRM, 25 seats"
    assert sent["In-Reply-To"] == "<fixture-inquiry-1@northwind.example>"
    assert sent["References"] == "<fixture-inquiry-1@northwind.example>"
    draft.refresh_from_db()
    assert sent["Message-ID"] == draft.outgoing_message_id
    assert "The price is 99 per seat." in sent.get_content()
    assert draft.status == Draft.SENT
    assert draft.message.thread.messages.filter(direction="out").count() == 1


def test_running_the_send_task_twice_sends_once(mailbox, alice, smtp_server):
    draft = approved_draft(mailbox, alice)
    assert send_draft(draft.pk) == "sent"
    assert send_draft(draft.pk) == "skipped: not approved"
    assert len(smtp_server.received) == 1


def test_a_draft_is_never_sent_without_approval(mailbox, smtp_server):
    draft = make_ready_draft(mailbox)
    assert send_draft(draft.pk) == "skipped: not approved"
    assert smtp_server.received == []


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Pricing", "Re: Pricing"),
        ("Re: Pricing", "Re: Pricing"),
        ("RE: Pricing", "RE: Pricing"),
        ("回复: 价格", "回复: 价格"),
        ("答复：价格", "答复：价格"),
        ("回覆：價格", "回覆：價格"),
        ("", "Re: your message"),
    ],
)
def test_re_is_not_doubled(subject, expected):
    assert reply_subject(subject) == expected


def test_references_extend_the_thread(mailbox, alice, smtp_server):
    make_ready_draft(mailbox)
    reply = make_ready_draft(mailbox, "reply_in_thread.eml")
    assert reply.approve(alice, "Dear Olivia,\n\nSoon.\n\nAcme")
    email = build_reply(reply)
    assert email.extra_headers["References"] == (
        "<fixture-inquiry-1@northwind.example> <fixture-inquiry-2@northwind.example>"
    )


def test_a_line_break_in_a_header_is_refused(mailbox, alice):
    draft = approved_draft(mailbox, alice)
    draft.message.subject = "Hi\r\nBcc: victim@example.com"
    with pytest.raises(HeaderInjectionError):
        build_reply(draft)


def test_a_refusing_server_leaves_the_draft_failed_with_the_error(mailbox, alice, smtp_server):
    smtp_server.refuse_with = "554 5.7.1 Message rejected by policy"
    draft = approved_draft(mailbox, alice)
    assert send_draft(draft.pk) == "failed"
    draft.refresh_from_db()
    assert draft.status == Draft.SEND_FAILED
    assert "Message rejected by policy" in draft.send_error
    assert draft.events.filter(action=ReviewEvent.SEND_FAILED).exists()


def test_a_server_that_is_down_leaves_the_draft_failed(mailbox, alice, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 2
    draft = approved_draft(mailbox, alice)
    assert send_draft(draft.pk) == "failed"
    draft.refresh_from_db()
    assert draft.status == Draft.SEND_FAILED
    assert "Connection refused" in draft.send_error


def test_a_failed_send_can_be_retried_and_is_then_sent_once(mailbox, alice, smtp_server):
    smtp_server.refuse_with = "451 4.3.0 Try again later"
    draft = approved_draft(mailbox, alice)
    send_draft(draft.pk)
    smtp_server.refuse_with = None
    message_id = Draft.objects.get(pk=draft.pk).outgoing_message_id
    draft.refresh_from_db()
    assert draft.retry_send(alice)
    assert not draft.retry_send(alice)  # a second click finds nothing to retry
    assert send_draft(draft.pk) == "sent"
    assert send_draft(draft.pk) == "skipped: not approved"
    [(_, sent)] = smtp_server.received
    assert sent["Message-ID"] == message_id

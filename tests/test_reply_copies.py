"""Copies (Cc) of replies: a draft keeps the email's other recipients as a mail client's
"Reply all" does, the reviewer changes the list beside the reply, the reply goes to each
copy, and erasure and retention reach the copies too (drafts/copies.py)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from drafts import erasure
from drafts.ingest import ingest_message
from drafts.models import Draft, Mailbox, Message, Outbox, ReviewEvent
from drafts.retention import redact
from drafts.sending import send_outbox
from tests.apiclient import api_for, draft_url, error_of
from tests.conftest import make_ready_draft

pytestmark = pytest.mark.django_db

COLLEAGUES = ["li.na@customer.example", "zhao.lei@customer.example", "zhang.san@partner.example"]


@pytest.fixture
def sales(db) -> Mailbox:
    """Another of the team's mailboxes, copied on the customer's email."""
    return Mailbox.objects.create(name="Sales", address="sales@acme.example")


def copied(mailbox: Mailbox) -> Draft:
    return make_ready_draft(mailbox, "copied_colleagues.eml", language="en")


def page_of(client, draft: Draft) -> str:
    return client.get(reverse("draft", args=[draft.pk])).text


def act(client, draft: Draft, action: str, cc: str, text: str | None = None):
    form = {"action": action, "version": draft.version, "cc": cc}
    form["reply_text"] = text or draft.reply_text
    return client.post(reverse("draft_action", args=[draft.pk]), form, follow=True)


def test_a_draft_copies_the_emails_other_recipients_but_the_team(mailbox, sales):
    draft = copied(mailbox)
    # Not the customer, not support@ or sales@ (any case), each once, in the email's order.
    assert draft.cc.splitlines() == COLLEAGUES
    message = draft.message
    assert message.cc.startswith('"Zhao, Lei" <zhao.lei@customer.example>, sales@acme.example')
    assert "张三 <zhang.san@partner.example>" in message.cc


def test_a_mailbox_that_does_not_answer_to_all_starts_without_copies(mailbox):
    Mailbox.objects.filter(pk=mailbox.pk).update(reply_to_all=False)
    assert copied(Mailbox.objects.get(pk=mailbox.pk)).cc == ""


def test_an_email_to_the_team_alone_has_no_copies(mailbox):
    assert make_ready_draft(mailbox).cc == ""


def test_the_draft_page_shows_who_gets_the_reply(client, alice, mailbox, sales):
    draft = copied(mailbox)
    client.force_login(alice)
    page = page_of(client, draft)
    assert '<span id="reply-to">wang.fang@customer.example</span>' in page
    assert 'name="cc" value="li.na@customer.example, zhao.lei@customer.example, ' in page
    assert "<dt>Cc</dt>" in page  # the email's own Cc, among its headers


def test_the_reviewer_changes_the_copies_with_the_reply(client, alice, mailbox, sales):
    draft = copied(mailbox)
    client.force_login(alice)
    cc = "Li Na <li.na@customer.example>; boss@customer.example\nwang.fang@customer.example"
    page = act(client, draft, "save", cc).text
    assert "Edit saved." in page
    draft.refresh_from_db()
    # The customer gets the reply anyway: not a copy of it.
    assert draft.cc.splitlines() == ["li.na@customer.example", "boss@customer.example"]
    event = ReviewEvent.objects.filter(draft=draft).latest("id")
    assert event.note == "Cc: li.na@customer.example, boss@customer.example"
    assert 'value="li.na@customer.example, boss@customer.example"' in page


def test_an_entry_that_is_no_address_is_refused_by_name_and_nothing_is_lost(
    client, alice, mailbox, sales
):
    draft = copied(mailbox)
    client.force_login(alice)
    page = act(client, draft, "approve", "li.na@customer.example, Zhao Lei", "My edited reply").text
    assert "“Zhao Lei” is not an email address; the copies were not changed." in page
    assert ">My edited reply</textarea>" in page
    assert 'value="li.na@customer.example, Zhao Lei"' in page
    fresh = Draft.objects.get(pk=draft.pk)
    assert (fresh.status, fresh.version, fresh.cc) == (Draft.READY, draft.version, draft.cc)


def test_a_reply_refused_for_placeholders_keeps_the_copies_being_edited(client, alice, mailbox):
    draft = copied(mailbox)
    client.force_login(alice)
    page = act(client, draft, "approve", "boss@customer.example", "Dear [Name], hello").text
    assert "Not sent: the reply still has placeholder text" in page
    assert ">Dear [Name], hello</textarea>" in page
    assert 'value="boss@customer.example"' in page


def test_too_many_copies_are_refused(client, alice, mailbox):
    draft = copied(mailbox)
    client.force_login(alice)
    many = ", ".join(f"person{n}@customer.example" for n in range(21))
    assert "At most 20 copies; this list has 21." in act(client, draft, "save", many).text


def test_the_reply_goes_to_the_customer_and_each_copy(client, alice, mailbox, sales, smtp_server):
    draft = copied(mailbox)
    client.force_login(alice)
    act(client, draft, "approve", "li.na@customer.example, zhao.lei@customer.example")
    outbox = Outbox.objects.get(draft=draft)
    assert send_outbox(outbox.pk) == "sent"
    [(recipients, sent)] = smtp_server.received
    assert recipients == ["wang.fang@customer.example", *COLLEAGUES[:2]]
    assert sent["To"] == "wang.fang@customer.example"
    assert sent["Cc"] == "li.na@customer.example, zhao.lei@customer.example"
    kept = draft.message.thread.messages.get(direction=Message.OUTBOUND)
    assert kept.cc == "li.na@customer.example, zhao.lei@customer.example"
    page = page_of(client, draft)
    assert '<td id="delivery-cc">li.na@customer.example, zhao.lei@customer.example</td>' in page


def test_a_copy_the_server_refuses_is_left_out_and_said(mailbox, alice, sales, smtp_server):
    draft = copied(mailbox)
    smtp_server.refuse_for["zhao.lei@customer.example"] = "550 5.1.1 No such user"
    assert draft.approve(alice, draft.reply_text)
    outbox = Outbox.objects.get(draft=draft)
    assert send_outbox(outbox.pk) == "sent"
    [(recipients, _sent)] = smtp_server.received
    assert recipients == ["wang.fang@customer.example", COLLEAGUES[0], COLLEAGUES[2]]
    outbox.refresh_from_db()
    assert outbox.state == Outbox.SENT
    assert "copies not accepted: zhao.lei@customer.example: 550 5.1.1 No such user" in (
        outbox.server_reply
    )


def test_the_customers_refusal_still_decides(mailbox, alice, sales, smtp_server):
    draft = copied(mailbox)
    smtp_server.refuse_for["wang.fang@customer.example"] = "550 5.1.1 No such user"
    assert draft.approve(alice, draft.reply_text)
    outbox = Outbox.objects.get(draft=draft)
    assert send_outbox(outbox.pk).startswith("failed: RCPT TO: 550")
    assert smtp_server.received == []


def test_the_api_shows_the_copies_and_approves_with_other_ones(alice, mailbox, sales):
    draft = copied(mailbox)
    api = api_for(alice)
    shown = api.get(draft_url(draft)).json()
    assert shown["cc"] == COLLEAGUES
    message = api.get(f"/api/v1/messages/{draft.message_id}").json()
    assert "zhao.lei@customer.example" in message["cc"]
    refused = api.post(draft_url(draft, "approve"), {"version": draft.version, "cc": ["nobody"]})
    assert refused.status_code == 400 and error_of(refused)["field"] == "cc"
    assert "“nobody” is not an email address" in error_of(refused)["message"]
    answer = api.post(draft_url(draft, "approve"), {"version": draft.version, "cc": []})
    assert answer.status_code == 200, answer.content
    assert Outbox.objects.get(draft=draft).cc == ""


def test_erasing_someone_copied_finds_the_conversations_that_name_them(mailbox, sales):
    draft = copied(mailbox)
    found = erasure.plan("zhao.lei@customer.example")
    assert found.message_ids == [draft.message_id]
    # Not a longer address that merely ends the same way.
    assert erasure.plan("lei@customer.example").empty
    # A copy a reviewer added to the reply is found too.
    Draft.objects.filter(pk=draft.pk).update(cc="added@customer.example")
    Message.objects.filter(pk=draft.message_id).update(cc="")
    assert erasure.plan("added@customer.example").message_ids == [draft.message_id]


def test_retention_removes_the_copies_with_the_content(mailbox, alice, sales):
    draft = copied(mailbox)
    assert draft.approve(alice, draft.reply_text)
    redact([draft.message_id])
    draft.refresh_from_db()
    assert draft.cc == "" and draft.message.cc == ""
    assert Outbox.objects.get(draft=draft).cc == ""


def test_our_reply_come_back_through_a_copy_gets_no_draft(mailbox, alice, smtp_server):
    """A copy to an alias of the team's own mailbox (help@ delivered to support@) brings
    the reply back into the inbox: answering it would be the team writing to itself."""
    draft = copied(mailbox)
    assert draft.approve(alice, draft.reply_text, cc=["help@acme.example"])
    outbox = Outbox.objects.get(draft=draft)
    assert send_outbox(outbox.pk) == "sent"
    [(_recipients, _sent)] = smtp_server.received
    # The mail server adds its trace header: not the same bytes as the copy kept as sent.
    returned = b"Received: from mx.acme.example; Fri, 27 Nov 2026 10:00:00 +0800\r\n" + bytes(
        smtp_server.raw[0]
    )
    message, created = ingest_message(mailbox, returned)
    assert created and message.auto_kind == "own-reply"
    assert not Draft.objects.filter(message=message).exists()

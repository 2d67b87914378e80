"""Blocked senders: their mail is stored and listed, but the model never drafts a reply."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.urls import reverse

from drafts import erasure
from drafts.ingest import ingest_message
from drafts.models import BlockedSender, Draft, Mailbox, StaffProfile
from tests.apiclient import api_for, draft_url
from tests.conftest import make_ready_draft

pytestmark = pytest.mark.django_db


def email_from(address: str, subject: str = "Cheap watches") -> bytes:
    return (
        f"From: Seller <{address}>\r\nTo: support@acme.example\r\nSubject: {subject}\r\n"
        f"Message-ID: <{abs(hash((address, subject)))}@example.com>\r\n"
        "Date: Tue, 10 Nov 2026 09:15:00 +0000\r\n\r\nBuy now.\r\n"
    ).encode()


def drafted(mailbox: Mailbox, address: str, subject: str = "Cheap watches") -> bool:
    message, _ = ingest_message(mailbox, email_from(address, subject))
    return Draft.objects.filter(message=message).exists() and not message.auto_kind


def test_a_blocked_address_or_domain_gets_no_draft(mailbox):
    BlockedSender.objects.create(mailbox=mailbox, pattern="Offers@Spam.example")
    BlockedSender.objects.create(mailbox=mailbox, pattern="@bulk.example")
    assert not drafted(mailbox, "offers@spam.example")
    assert not drafted(mailbox, "OFFERS@spam.example", "Again")
    assert not drafted(mailbox, "anyone@bulk.example")
    assert drafted(mailbox, "friend@spam.example")  # another address of the same domain
    assert drafted(mailbox, "x@sub.bulk.example")  # a subdomain is another domain
    message, _ = ingest_message(mailbox, email_from("anyone@bulk.example", "Listed"))
    assert message.auto_kind == "blocked"


def test_a_block_applies_to_its_mailbox_or_to_all(mailbox):
    sales = Mailbox.objects.create(name="sales", address="sales@acme.example")
    BlockedSender.objects.create(mailbox=sales, pattern="@spam.example")
    assert drafted(mailbox, "offers@spam.example")
    assert not drafted(sales, "offers@spam.example")
    BlockedSender.objects.create(mailbox=None, pattern="@everywhere.example")
    assert not drafted(mailbox, "a@everywhere.example")
    assert not drafted(sales, "a@everywhere.example")


def test_blocked_mail_is_listed_under_not_drafted(alice_client, mailbox):
    BlockedSender.objects.create(mailbox=mailbox, pattern="@spam.example")
    ingest_message(mailbox, email_from("offers@spam.example"))
    page = alice_client.get(reverse("not_drafted"))
    assert "Cheap watches" in page.text and "blocked sender" in page.text


@pytest.mark.parametrize(
    "pattern", ["spam.example", "@", "a@b@spam.example", "@spam", "name @spam.example", "x@"]
)
def test_a_pattern_that_is_no_address_or_domain_is_refused_by_name(pattern):
    with pytest.raises(ValidationError, match="is neither an address"):
        BlockedSender(pattern=pattern).full_clean()


def test_rejecting_with_the_box_ticked_blocks_the_sender(alice, alice_client, mailbox):
    draft = make_ready_draft(mailbox)
    response = alice_client.post(
        reverse("draft_action", args=[draft.pk]),
        {"action": "reject", "reason": "no_reply_needed", "block_sender": "1"},
        follow=True,
    )
    address = draft.message.from_address
    assert [str(m) for m in response.context["messages"]] == [
        f"Draft rejected, and {address} is blocked: their next emails get no draft."
    ]
    [blocked] = BlockedSender.objects.all()
    assert (blocked.pattern, blocked.mailbox, blocked.created_by) == (address, mailbox, alice)
    assert not drafted(mailbox, address, "Next one")


def test_a_bulk_rejection_blocks_each_sender_once(alice, alice_client, mailbox):
    drafts = [make_ready_draft(mailbox), make_ready_draft(mailbox, "with_attachment.eml")]
    response = alice_client.post(
        reverse("queue_bulk"),
        {
            "action": "reject",
            "reason": "no_reply_needed",
            "block_sender": "1",
            "draft": [f"{d.pk}:{d.version}" for d in drafts],
        },
        follow=True,
    )
    assert [str(m) for m in response.context["messages"]] == [
        "Rejected 2 drafts. 2 senders are blocked: their next emails get no draft."
    ]
    assert BlockedSender.objects.count() == 2


def test_the_api_blocks_on_request(alice, mailbox):
    draft = make_ready_draft(mailbox)
    api = api_for(alice)
    bad = api.post(draft_url(draft, "reject"), {"reason": "other", "block_sender": "yes"})
    assert bad.status_code == 400 and not BlockedSender.objects.exists()
    ok = api.post(draft_url(draft, "reject"), {"reason": "other", "block_sender": True})
    assert ok.status_code == 200
    assert BlockedSender.objects.get().pattern == draft.message.from_address


def test_an_erasure_removes_the_address_from_the_block_list(alice, mailbox):
    draft = make_ready_draft(mailbox)
    assert draft.reject(alice, "no_reply_needed")
    BlockedSender.block(draft, alice)
    BlockedSender.objects.create(mailbox=mailbox, pattern="@fabrikam.example")
    found = erasure.plan(draft.message.from_address)
    assert found.counts["blocked-sender entries"] == 1
    erasure.erase(found, "dpo")
    assert list(BlockedSender.objects.values_list("pattern", flat=True)) == ["@fabrikam.example"]


def test_an_admin_manages_the_block_list(client, mailbox):
    dana = User.objects.create_user("dana", password="dana-password-1")
    StaffProfile.objects.create(user=dana, role=StaffProfile.ADMIN)
    client.force_login(User.objects.get(pk=dana.pk))
    response = client.post(
        reverse("admin:drafts_blockedsender_add"),
        {"mailbox": mailbox.pk, "pattern": "@Spam.example", "note": "Watches"},
    )
    assert response.status_code == 302, response.text[:2000]
    blocked = BlockedSender.objects.get()
    assert (blocked.pattern, blocked.created_by.username) == ("@spam.example", "dana")
    refused = client.post(
        reverse("admin:drafts_blockedsender_add"), {"mailbox": mailbox.pk, "pattern": "spam"}
    )
    assert "is neither an address (name@example.com) nor a domain" in refused.text

"""Saved replies: kept by admins, offered on the draft page, filled in from the draft."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from drafts import saved_replies
from drafts.models import Draft, Mailbox, SavedReply, StaffProfile
from tests.conftest import make_ready_draft

pytestmark = pytest.mark.django_db

REFUND = (
    "To request a refund for order {order_number}, reply with your bank details; "
    "{product} refunds take 3 working days."
)


def order_fields(**more: object) -> dict:
    fields = {
        "customer_name": [{"value": "Li Wei", "source": "model", "span": None, "verified": True}],
        "order_numbers": [
            {"value": "A-1042", "source": "pattern", "span": [0, 6], "verified": True}
        ],
    }
    return fields | more


def offered_on_page(client, draft: Draft) -> list[dict]:
    return client.get(reverse("draft", args=[draft.pk])).context["saved_replies"]


@pytest.fixture
def dana(db) -> User:
    """An admin by role."""
    user = User.objects.create_user("dana", password="dana-password-1")
    StaffProfile.objects.create(user=user, role=StaffProfile.ADMIN)
    return User.objects.get(pk=user.pk)


def admin_add(client, **fields: str):
    data = {"title": "Refunds", "text": REFUND, "language": "", "intent": "", "is_active": "on"}
    return client.post(reverse("admin:drafts_savedreply_add"), data | fields)


def test_an_admin_adds_a_saved_reply(client, dana):
    client.force_login(dana)
    response = admin_add(client)
    assert response.status_code == 302, response.text[:2000]
    saved = SavedReply.objects.get()
    assert (saved.title, saved.updated_by, saved.uses) == ("Refunds", dana, 0)
    page = client.get(reverse("admin:drafts_savedreply_changelist"))
    assert "Refunds" in page.text


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "Your order {order} is on its way.",
            "Unknown variable(s): {order}. Use: {customer_name},",
        ),
        ("Dear {customer_name.upper}", "Unknown variable(s): {customer_name.upper}."),
        ("Prices in {curly brackets", "expected &#x27;}&#x27; before end of string"),
        ("A lone } brace", "Single &#x27;}&#x27; encountered in format string"),
    ],
)
def test_a_saved_reply_with_a_bad_variable_is_refused_by_name(client, dana, text, error):
    client.force_login(dana)
    response = admin_add(client, text=text)
    assert response.status_code == 200
    assert error in response.text
    assert not SavedReply.objects.exists()


def test_literal_braces_are_written_doubled():
    saved = SavedReply(title="JSON", text='Send {{"order": "{order_number}"}}')
    saved.clean()
    assert saved_replies.fill(saved.text, {"order_number": "A-1"}) == 'Send {"order": "A-1"}'


def test_the_page_offers_the_replies_for_its_mailbox_and_language_its_intent_first(
    alice_client, mailbox
):
    sales = Mailbox.objects.create(name="sales", address="sales@acme.example")
    for title, fields in [
        ("Anywhere", {}),
        ("Complaints", {"intent": "complaint"}),
        ("Inquiries", {"intent": "inquiry"}),
        ("This mailbox", {"mailbox": mailbox}),
        ("Sales only", {"mailbox": sales}),
        ("中文", {"language": "zh"}),
        ("English", {"language": "en"}),
        ("Retired", {"is_active": False}),
    ]:
        SavedReply.objects.create(title=title, text=title, **fields)
    draft = make_ready_draft(mailbox)  # an English inquiry in the default mailbox
    titles = [saved["title"] for saved in offered_on_page(alice_client, draft)]
    assert titles == ["Inquiries", "Anywhere", "English", "This mailbox", "Complaints"]
    page = alice_client.get(reverse("draft", args=[draft.pk])).text
    assert "Insert a saved reply" in page


def test_variables_are_filled_from_the_draft_and_missing_ones_stay_bracketed(
    alice, alice_client, mailbox
):
    alice.first_name, alice.last_name = "Alice", "Chen"
    alice.save()
    SavedReply.objects.create(title="Refunds", text=REFUND)
    SavedReply.objects.create(
        title="Signed", text="{customer_name}, I'm {reviewer} of {company_name}."
    )
    draft = make_ready_draft(mailbox, fields=order_fields())
    texts = {s["title"]: s["text"] for s in offered_on_page(alice_client, draft)}
    assert texts["Refunds"] == (
        "To request a refund for order A-1042, reply with your bank details; "
        "[product] refunds take 3 working days."
    )
    assert texts["Signed"] == "Li Wei, I'm Alice Chen of Acme Cloud."


def test_a_missing_value_is_asked_for_in_the_reviewers_language(alice, client, mailbox):
    SavedReply.objects.create(title="Refunds", text=REFUND)
    StaffProfile.objects.create(user=alice, language="zh-hans")
    client.force_login(alice)
    draft = make_ready_draft(mailbox, fields=order_fields())
    [saved] = offered_on_page(client, draft)
    assert "[产品]" in saved["text"]


def test_a_reply_with_an_unfilled_variable_is_not_sent(alice_client, mailbox):
    SavedReply.objects.create(title="Refunds", text=REFUND)
    draft = make_ready_draft(mailbox, fields=order_fields())
    [saved] = offered_on_page(alice_client, draft)
    text = f"Dear Li Wei,\n\n{saved['text']}\n\nAcme Cloud Support Team"
    response = alice_client.post(
        reverse("draft_action", args=[draft.pk]),
        {"action": "approve", "reply_text": text, "version": draft.version},
        follow=True,
    )
    assert "Not sent: the reply still has placeholder text ([product])" in response.text
    assert Draft.objects.get(pk=draft.pk).status == Draft.READY


def test_only_a_draft_awaiting_review_offers_them(alice, alice_client, mailbox):
    SavedReply.objects.create(title="Refunds", text=REFUND)
    draft = make_ready_draft(mailbox)
    assert draft.reject(alice, "tone")
    page = alice_client.get(reverse("draft", args=[draft.pk]))
    assert page.context["saved_replies"] == []
    assert "Insert a saved reply" not in page.text


def test_each_insertion_is_counted_for_the_admins(alice_client, mailbox):
    sales = Mailbox.objects.create(name="sales", address="sales@acme.example")
    mine = SavedReply.objects.create(title="Refunds", text=REFUND)
    theirs = SavedReply.objects.create(title="Sales", text="…", mailbox=sales)
    draft = make_ready_draft(mailbox)
    other_team = make_ready_draft(sales, "with_attachment.eml")

    def used(d: Draft, saved: SavedReply) -> int:
        return alice_client.post(reverse("saved_reply_used", args=[d.pk, saved.pk])).status_code

    assert used(draft, mine) == 204
    assert used(draft, mine) == 204
    assert used(draft, theirs) == 404  # not offered for this draft
    assert used(other_team, mine) == 404  # a draft alice cannot see
    assert (
        alice_client.get(reverse("saved_reply_used", args=[draft.pk, mine.pk])).status_code == 405
    )
    assert [SavedReply.objects.get(pk=s.pk).uses for s in (mine, theirs)] == [2, 0]
    # The most used come first among equally suited ones.
    SavedReply.objects.create(title="A rarely used one", text="…")
    assert [s["title"] for s in offered_on_page(alice_client, draft)] == [
        "Refunds",
        "A rarely used one",
    ]

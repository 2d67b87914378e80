"""Acting on several drafts of the queue at once, and taking a rejection back."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from drafts import bulk, retention
from drafts.models import Draft, Mailbox, ReviewEvent
from tests.apiclient import api_for, draft_url, error_of
from tests.conftest import make_ready_draft

pytestmark = pytest.mark.django_db

NAMES = ("inquiry_en.eml", "with_attachment.eml", "chinese_gb2312.eml")


@pytest.fixture
def three(mailbox) -> list[Draft]:
    return [make_ready_draft(mailbox, name) for name in NAMES]


def ticked(*drafts: Draft) -> list[str]:
    """The check boxes as the queue renders them: id and the version it listed."""
    return [f"{d.pk}:{d.version}" for d in drafts]


def post(client, action: str, drafts: list[str], **fields: str):
    data = {"action": action, "draft": drafts, "back": "/?tab=review", **fields}
    return client.post(reverse("queue_bulk"), data, follow=True)


def notices(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def statuses(*drafts: Draft) -> list[str]:
    return [Draft.objects.get(pk=d.pk).status for d in drafts]


# -- rejecting ----------------------------------------------------------------------------


def test_ticked_drafts_are_rejected_each_with_its_own_history(alice, alice_client, three):
    first, second, third = three
    response = post(
        alice_client, "reject", ticked(first, second), reason="no_reply_needed", note="Spam"
    )
    assert response.redirect_chain[-1][0] == "/?tab=review"
    assert notices(response) == ["Rejected 2 drafts."]
    assert statuses(first, second, third) == [Draft.REJECTED, Draft.REJECTED, Draft.READY]
    for draft in (first, second):
        draft.refresh_from_db()
        assert (draft.reject_reason, draft.reject_note, draft.decided_by) == (
            "no_reply_needed",
            "Spam",
            alice,
        )
        [event] = draft.events.all()
        assert (event.action, event.user, event.reason) == (
            ReviewEvent.REJECT,
            alice,
            "no_reply_needed",
        )
    # The queue lists only the third now, and offers the two back.
    assert [d.pk for d in response.context["drafts"]] == [third.pk]
    assert response.context["just_rejected"] == [first.pk, second.pk]
    assert "Take the rejections back" in response.text
    # Offered once: the next page has no such offer.
    assert "Take the rejections back" not in alice_client.get(reverse("queue")).text


def test_the_offer_takes_the_rejections_back(alice, alice_client, three):
    first, second, _ = three
    post(alice_client, "reject", ticked(first, second), reason="tone")
    # The offer's form names the drafts without versions.
    response = post(alice_client, "reopen", [str(first.pk), str(second.pk)])
    assert notices(response) == ["2 drafts are back in review."]
    assert statuses(first, second) == [Draft.READY, Draft.READY]
    first.refresh_from_db()
    assert (first.decided_at, first.decided_by, first.reject_reason) == (None, None, "")
    assert first.held_by() is None  # many at once: none is held for the reviewer
    assert [e.action for e in first.events.all()] == [ReviewEvent.REJECT, ReviewEvent.REOPEN]


def test_a_draft_changed_or_opened_since_the_list_is_left_as_it_is(alice, bob, alice_client, three):
    first, second, third = three
    listed = ticked(first, second, third)
    assert second.save_edit(bob, "Dear Olivia,\n\nBob's answer.\n\nAcme")  # a newer version
    assert Draft.objects.get(pk=third.pk).claim(bob)  # bob has it open
    response = post(alice_client, "reject", listed, reason="tone")
    assert statuses(first, second, third) == [Draft.REJECTED, Draft.READY, Draft.READY]
    until = f"{timezone.localtime(Draft.objects.get(pk=third.pk).claimed_until):%H:%M}"
    assert notices(response) == [
        "Rejected 1 draft.",
        "2 drafts were left as they were: "
        f"“{second.message.subject}” (someone changed it after the list was shown); "
        f"“{third.message.subject}” (bob has it open until {until})",
    ]
    assert Draft.objects.get(pk=second.pk).reply_text == "Dear Olivia,\n\nBob's answer.\n\nAcme"


def test_a_draft_decided_meanwhile_is_reported_with_its_state(alice, bob, alice_client, three):
    first, second, _ = three
    assert Draft.objects.get(pk=first.pk).reject(bob, "tone")
    response = post(alice_client, "reject", ticked(first, second), reason="other")
    assert notices(response)[1] == (
        f"1 draft was left as it was: “{first.message.subject}” (it is now “Rejected”)"
    )
    assert Draft.objects.get(pk=first.pk).decided_by == bob


def test_another_teams_draft_cannot_be_touched_by_its_id(alice, alice_client, three):
    sales = Mailbox.objects.create(name="sales", address="sales@acme.example")
    theirs = make_ready_draft(sales, "inquiry_en.eml")
    response = post(alice_client, "reject", ticked(three[0], theirs), reason="tone")
    assert notices(response) == [
        "Rejected 1 draft.",
        f"1 draft was left as it was: draft {theirs.pk} (no longer exists)",
    ]
    assert statuses(theirs) == [Draft.READY]


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"draft": []}, "Select at least one draft."),
        ({"draft": ["12:3", "abc"]}, "“abc” is not a draft of the list."),
        ({"draft": [str(n) for n in range(bulk.MAX_DRAFTS + 1)]}, "Select at most 200 drafts"),
        ({"reason": ""}, "Choose a reason to reject the selected drafts."),
        ({"reason": "because"}, "Choose a reason to reject the selected drafts."),
        ({"action": "approve"}, "Unknown action 'approve'."),
    ],
)
def test_bad_requests_change_nothing_and_say_why(alice_client, three, fields, error):
    data = {"action": "reject", "reason": "tone", "draft": ticked(*three)} | fields
    response = alice_client.post(reverse("queue_bulk"), data, follow=True)
    [notice] = notices(response)
    assert notice.startswith(error)
    assert statuses(*three) == [Draft.READY] * 3
    assert not ReviewEvent.objects.exists()


def test_it_goes_back_only_to_a_page_of_its_own(alice_client, three):
    data = {"action": "reject", "reason": "tone", "draft": ticked(three[0])}
    elsewhere = alice_client.post(reverse("queue_bulk"), data | {"back": "https://evil.example/"})
    assert elsewhere.url == reverse("queue")
    same = alice_client.post(reverse("queue_bulk"), data | {"back": "/?tab=review&intent=inquiry"})
    assert same.url == "/?tab=review&intent=inquiry"


def test_there_is_no_bulk_approval(alice_client, three, smtp_server):
    post(alice_client, "approve", ticked(*three))
    assert statuses(*three) == [Draft.READY] * 3
    assert "Approve" not in alice_client.get(reverse("queue")).context["bulk_actions"]


# -- assigning ----------------------------------------------------------------------------


def test_ticked_drafts_are_given_to_a_reviewer_of_their_mailbox(alice, bob, alice_client, three):
    sales = Mailbox.objects.create(name="sales", address="sales@acme.example")
    sales.reviewers.add(alice)
    theirs = make_ready_draft(sales, "inquiry_en.eml")
    response = post(alice_client, "assign", ticked(*three[:2], theirs), to=str(bob.pk))
    assert notices(response) == [
        "Assigned 2 drafts to bob.",
        f"1 draft was left as it was: “{theirs.message.subject}” "
        "(bob does not answer the mailbox sales)",
    ]
    assigned = [Draft.objects.get(pk=d.pk).assigned_to for d in (*three, theirs)]
    assert assigned == [bob, bob, None, None]
    # Bob's "assigned to me" lists them; the reviewer who tidied up is in the history.
    [event] = Draft.objects.get(pk=three[0].pk).events.all()
    assert (event.action, event.user, event.note) == (ReviewEvent.REASSIGN, alice, "to bob")

    response = post(alice_client, "assign", ticked(*three[:2]), to="nobody")
    assert notices(response) == ["Unassigned 2 drafts."]
    assert Draft.objects.filter(assigned_to__isnull=False).count() == 0


def test_assigning_needs_someone_chosen(alice_client, three):
    [notice] = notices(post(alice_client, "assign", ticked(*three), to=""))
    assert notice == "Choose whom to assign the selected drafts to."


def test_the_queue_offers_what_each_tab_allows(alice, bob, alice_client, three):
    review = alice_client.get(reverse("queue"))
    assert review.context["bulk_actions"] == ("reject", "assign")
    assert [str(u) for u in review.context["assignees"]] == ["alice", "bob"]
    assert f'value="{three[0].pk}:{three[0].version}"' in review.text
    assert 'name="action" value="reject"' in review.text
    sent = alice_client.get(reverse("queue"), {"tab": "sent"})
    assert sent.context["bulk_actions"] == ()
    assert 'type="checkbox" name="draft"' not in sent.text
    rejected = alice_client.get(reverse("queue"), {"tab": "rejected"})
    assert 'name="action" value="reopen"' in rejected.text
    # The refreshed table keeps its check boxes.
    fragment = alice_client.get(reverse("queue"), {"fragment": "1"})
    assert f'value="{three[1].pk}:{three[1].version}" form="bulk"' in fragment.text


# -- taking a rejection back --------------------------------------------------------------


def test_a_reviewer_reopens_a_rejected_draft_from_its_page(alice, alice_client, mailbox):
    draft = make_ready_draft(mailbox)
    assert draft.reject(alice, "wrong_facts", "Price is wrong")
    page = reverse("draft", args=[draft.pk])
    assert "Reopen for review" in alice_client.get(page).text
    response = alice_client.post(
        reverse("draft_action", args=[draft.pk]), {"action": "reopen"}, follow=True
    )
    assert notices(response) == [
        "The rejection is taken back: the draft awaits review, held for you."
    ]
    draft.refresh_from_db()
    assert draft.status == Draft.READY and draft.held_by() == alice
    assert draft.reply_text == draft.generated_text
    history = response.text
    assert "Rejection taken back by alice" in history
    # Reopening twice changes nothing more.
    again = alice_client.post(
        reverse("draft_action", args=[draft.pk]), {"action": "reopen"}, follow=True
    )
    assert notices(again)[0].startswith("Nothing changed")


def test_the_stats_forget_a_rejection_taken_back(alice, carol, client, mailbox):
    draft = make_ready_draft(mailbox)
    assert draft.reject(alice, "tone")
    # Decided three days ago: a closed day, summed up once by the stats page.
    Draft.objects.filter(pk=draft.pk).update(decided_at=timezone.now() - timedelta(days=3))
    client.force_login(carol)
    [row] = client.get(reverse("stats")).context["rows"]
    assert (row.reviewer, row.rejected) == ("alice", 1)
    assert Draft.objects.get(pk=draft.pk).reopen(alice)
    assert client.get(reverse("stats")).context["rows"] == []


def test_a_redacted_email_cannot_be_reopened(alice, alice_client, mailbox):
    draft = make_ready_draft(mailbox)
    assert draft.reject(alice, "tone")
    retention.redact([draft.message_id])
    assert "Reopen for review" not in alice_client.get(reverse("draft", args=[draft.pk])).text
    response = post(alice_client, "reopen", [str(draft.pk)])
    [notice] = notices(response)
    assert notice.startswith("1 draft was left as it was: ")
    assert notice.endswith("(the retention period has removed its email)")
    assert statuses(draft) == [Draft.REJECTED]


def test_the_api_takes_a_rejection_back(alice, mailbox):
    api = api_for(alice)
    draft = make_ready_draft(mailbox)
    refused = api.post(draft_url(draft, "reopen"))
    assert refused.status_code == 409
    assert error_of(refused)["code"] == "not_rejected"
    assert draft.reject(alice, "tone", "too stiff")
    answer = api.post(draft_url(draft, "reopen"))
    assert answer.status_code == 200
    body = answer.json()
    assert body["status"] == "ready"
    assert body["history"][-1]["action"] == "reopen"
    assert statuses(draft) == [Draft.READY]
    assert draft.reject(alice, "tone")
    retention.redact([draft.message_id])
    assert error_of(api.post(draft_url(draft, "reopen")))["code"] == "redacted"

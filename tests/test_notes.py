"""Notes for the team on a draft: in its history, never sent, never in an edit's way."""

from __future__ import annotations

import pytest
from django.urls import reverse

from drafts import retention
from drafts.models import Draft, ReviewEvent
from tests.apiclient import api_for, draft_url, error_of
from tests.conftest import make_ready_draft

pytestmark = pytest.mark.django_db


def add_note(client, draft: Draft, note: str, **more: str):
    return client.post(
        reverse("draft_action", args=[draft.pk]),
        {"action": "note", "note": note, **more},
        follow=True,
    )


def notices(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_a_note_goes_into_the_history_and_changes_nothing_else(alice, alice_client, mailbox):
    draft = make_ready_draft(mailbox)
    response = add_note(alice_client, draft, "  Asked finance about the refund.  ")
    assert response.redirect_chain[-1][0].endswith(f"/drafts/{draft.pk}/#notes")
    assert notices(response) == ["Note added for the team."]
    assert "Note for the team by alice — Asked finance about the refund." in response.text
    [event] = draft.events.all()
    assert (event.action, event.user, event.note) == (
        ReviewEvent.NOTE,
        alice,
        "Asked finance about the refund.",
    )
    before = draft.version
    draft.refresh_from_db()
    assert (draft.status, draft.version) == (Draft.READY, before)
    # An edit made on the version read before the note is not stale.
    assert draft.save_edit(alice, "Dear Olivia,\n\nNew text.\n\nAcme", before)


def test_a_colleague_adds_a_note_while_the_draft_is_open_elsewhere(alice, bob, client, mailbox):
    draft = make_ready_draft(mailbox)
    assert draft.claim(alice)
    client.force_login(bob)
    assert notices(add_note(client, draft, "Customer called, wants a callback."))[0] == (
        "Note added for the team."
    )
    assert Draft.objects.get(pk=draft.pk).held_by() == alice


def test_notes_are_possible_after_the_decision(alice, alice_client, mailbox):
    draft = make_ready_draft(mailbox)
    assert draft.reject(alice, "needs_human")
    add_note(alice_client, draft, "Answered by phone instead.")
    assert [e.action for e in draft.events.all()] == [ReviewEvent.REJECT, ReviewEvent.NOTE]


def test_the_reply_being_edited_survives_adding_a_note(alice_client, mailbox):
    draft = make_ready_draft(mailbox)
    typed = "Dear Olivia,\n\nHalf-written answer\n\nAcme Cloud Support Team"
    response = add_note(alice_client, draft, "Checking the price list.", reply_text=typed)
    assert response.context["reply_text"] == typed
    assert Draft.objects.get(pk=draft.pk).reply_text == draft.reply_text  # not saved


def test_an_empty_or_long_note_is_refused_and_kept(alice_client, mailbox):
    draft = make_ready_draft(mailbox)
    typed = "Dear Olivia,\n\nHalf-written answer\n\nAcme Cloud Support Team"
    response = add_note(alice_client, draft, "   ", reply_text=typed)
    assert notices(response) == ["The note is empty."]
    assert response.context["reply_text"] == typed
    long = "x" * (Draft.NOTE_MAX + 1)
    response = add_note(alice_client, draft, long)
    assert notices(response) == ["The note is 2001 characters long; at most 2000 fit."]
    assert response.context["kept_note"] == long
    assert not ReviewEvent.objects.exists()


def test_a_note_is_removed_with_the_emails_content(alice, mailbox):
    draft = make_ready_draft(mailbox)
    assert draft.reject(alice, "tone")
    draft.add_note(alice, "Li Wei's phone is 138 0000 0000")
    retention.redact([draft.message_id])
    assert list(draft.events.values_list("note", flat=True)) == ["", ""]


def test_the_api_adds_a_note(alice, mailbox):
    api = api_for(alice)
    draft = make_ready_draft(mailbox)
    answer = api.post(draft_url(draft, "notes"), {"text": "Escalated to tier 2."})
    assert answer.status_code == 200
    last = answer.json()["history"][-1]
    assert (last["action"], last["user"], last["note"]) == ("note", "alice", "Escalated to tier 2.")
    assert answer.json()["version"] == draft.version
    assert error_of(api.post(draft_url(draft, "notes"), {"text": "  "}))["code"] == "empty"
    too_long = api.post(draft_url(draft, "notes"), {"text": "x" * 2001})
    assert too_long.status_code == 400 and error_of(too_long)["field"] == "text"

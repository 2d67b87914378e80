"""Two reviewers, one draft: claims and optimistic concurrency (Django's test client).

The same collision is driven through two real browsers in tests/test_browser.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from drafts.models import Draft, ReviewEvent
from tests.conftest import make_ready_draft

pytestmark = pytest.mark.django_db


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def act(client: Client, draft: Draft, action: str, **data: object):
    return client.post(
        reverse("draft_action", args=[draft.pk]), {"action": action, **data}, follow=True
    )


def test_opening_a_draft_claims_it_and_others_see_who_holds_it(mailbox, alice, bob):
    draft = make_ready_draft(mailbox)
    login(alice).get(reverse("draft", args=[draft.pk]))
    draft.refresh_from_db()
    assert draft.held_by() == alice
    page = login(bob).get(reverse("draft", args=[draft.pk])).content.decode()
    assert "alice is editing this draft" in page


def test_a_draft_held_by_someone_else_cannot_be_approved(mailbox, alice, bob):
    draft = make_ready_draft(mailbox)
    login(alice).get(reverse("draft", args=[draft.pk]))
    bobs = login(bob)
    page = act(bobs, draft, "approve", reply_text="Bob's answer").content.decode()
    assert "alice is editing this draft" in page
    draft.refresh_from_db()
    assert draft.status == Draft.READY
    assert not ReviewEvent.objects.filter(action=ReviewEvent.APPROVE).exists()
    assert "Bob&#x27;s answer" in page  # bob's text is shown back to him, not lost


def test_an_expired_claim_can_be_taken(mailbox, alice, bob):
    draft = make_ready_draft(mailbox)
    login(alice).get(reverse("draft", args=[draft.pk]))
    Draft.objects.filter(pk=draft.pk).update(claimed_until=timezone.now() - timedelta(seconds=1))
    bobs = login(bob)
    bobs.get(reverse("draft", args=[draft.pk]))
    act(bobs, draft, "approve", reply_text="Bob's answer", version=draft.version)
    assert Draft.objects.get(pk=draft.pk).status == Draft.APPROVED


def test_a_stale_edit_never_overwrites_a_newer_one(mailbox, alice):
    draft = make_ready_draft(mailbox)
    alices = login(alice)
    alices.get(reverse("draft", args=[draft.pk]))
    opened = draft.version
    act(alices, draft, "save", reply_text="First edit", version=opened)
    page = act(alices, draft, "save", reply_text="Edit of the old text", version=opened)
    text = page.content.decode()
    assert "someone else changed this draft after you opened it" in text
    assert "Edit of the old text" in text  # kept and shown beside the newer version
    assert Draft.objects.get(pk=draft.pk).reply_text == "First edit"


def test_the_holder_renews_and_releases_the_claim(mailbox, alice, bob):
    draft = make_ready_draft(mailbox)
    alices = login(alice)
    alices.get(reverse("draft", args=[draft.pk]))
    renewed = alices.post(reverse("draft_claim", args=[draft.pk])).json()
    assert renewed["held"] is True
    assert login(bob).post(reverse("draft_claim", args=[draft.pk])).json() == {
        "held": False,
        "holder": "alice",
        "until": renewed["until"],
        "version": draft.version,
    }
    alices.post(reverse("draft_claim", args=[draft.pk]), {"release": "1"})
    assert Draft.objects.get(pk=draft.pk).held_by() is None


def test_approving_releases_the_claim(mailbox, alice):
    draft = make_ready_draft(mailbox)
    alices = login(alice)
    alices.get(reverse("draft", args=[draft.pk]))
    act(alices, draft, "approve", reply_text="Thanks!", version=draft.version)
    draft.refresh_from_db()
    assert draft.status == Draft.APPROVED
    assert draft.claimed_by is None


def test_two_claims_at_once_give_the_draft_to_one(mailbox, alice, bob):
    draft = make_ready_draft(mailbox)
    first, second = Draft.objects.get(pk=draft.pk), Draft.objects.get(pk=draft.pk)
    assert first.claim(alice) is True
    assert second.claim(bob) is False
    assert first.claim(alice) is True  # renewing one's own claim


def test_leaving_a_page_does_not_release_the_claim_its_successor_renewed(mailbox, alice):
    draft = make_ready_draft(mailbox)
    alices = login(alice)
    alices.get(reverse("draft", args=[draft.pk]))
    first = Draft.objects.get(pk=draft.pk).claimed_until
    alices.get(reverse("draft", args=[draft.pk]))  # reloaded: the claim is renewed
    alices.post(
        reverse("draft_claim", args=[draft.pk]), {"release": "1", "until": first.isoformat()}
    )
    assert Draft.objects.get(pk=draft.pk).held_by() == alice

"""Sharing new drafts out among a mailbox's reviewers (Mailbox.auto_assign)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from drafts.assignment import share_out
from drafts.ingest import ingest_message
from drafts.models import Draft, Mailbox, ReviewEvent, StaffProfile
from drafts.tasks import generate_draft
from tests.conftest import mail_bytes, make_ready_draft

pytestmark = pytest.mark.django_db

NAMES = ("inquiry_en.eml", "with_attachment.eml", "chinese_gb2312.eml", "html_hostile.eml")


@pytest.fixture
def sharing(mailbox) -> Mailbox:
    mailbox.auto_assign = True
    mailbox.save()
    return mailbox


def assignees(*drafts: Draft) -> list[str | None]:
    return [getattr(Draft.objects.get(pk=d.pk).assigned_to, "username", None) for d in drafts]


def test_new_drafts_go_to_the_reviewer_with_the_least_to_do(sharing, alice, bob):
    busy = make_ready_draft(sharing, assigned_to=alice)  # alice has one already
    drafts = [make_ready_draft(sharing, name) for name in NAMES[1:]]
    assert share_out([d.pk for d in drafts]) == {
        drafts[0].pk: "bob",
        drafts[1].pk: "alice",
        drafts[2].pk: "bob",
    }
    assert assignees(busy, *drafts) == ["alice", "bob", "alice", "bob"]
    [event] = Draft.objects.get(pk=drafts[0].pk).events.all()
    assert (event.action, event.user, event.note) == (ReviewEvent.REASSIGN, None, "to bob")


def test_reviewers_away_supervisors_and_inactive_accounts_get_none(sharing, alice, bob, carol):
    StaffProfile.objects.create(user=bob, away=True)
    gone = User.objects.create_user("gone", is_active=False)
    sharing.reviewers.add(gone)
    drafts = [make_ready_draft(sharing, name) for name in NAMES[:3]]
    share_out([d.pk for d in drafts])
    assert assignees(*drafts) == ["alice", "alice", "alice"]


def test_nothing_is_shared_out_unless_the_mailbox_asks(mailbox, alice, bob):
    draft = make_ready_draft(mailbox)
    assert share_out([draft.pk]) == {}
    assert assignees(draft) == [None]


def test_a_draft_someone_was_given_or_that_is_not_ready_keeps_its_owner(sharing, alice, bob):
    given = make_ready_draft(sharing, assigned_to=bob)
    waiting = make_ready_draft(sharing, NAMES[1], status=Draft.QUEUED)
    assert share_out([given.pk, waiting.pk]) == {}
    assert assignees(given, waiting) == ["bob", None]


def test_no_reviewer_no_assignment(sharing, carol):
    draft = make_ready_draft(sharing)
    assert share_out([draft.pk]) == {}


def test_the_worker_shares_drafts_out_as_it_finishes_them(sharing, alice, bob, settings):
    settings.REPLYHUB_MAX_NEW_TOKENS = 16
    settings.REPLYHUB_ANALYSIS_MAX_NEW_TOKENS = 16
    settings.REPLYHUB_BATCH_SIZE = 2
    messages = [ingest_message(sharing, mail_bytes(name))[0] for name in NAMES[:2]]
    assert generate_draft(messages[0].draft.pk) == "ready: 2"
    assert sorted(assignees(*(m.draft for m in messages))) == ["alice", "bob"]


def test_the_queue_shows_who_has_each_draft(sharing, alice, bob, client):
    make_ready_draft(sharing, assigned_to=bob)
    client.force_login(alice)
    assert '<div class="hint small assignee">→ bob</div>' in client.get(reverse("queue")).text

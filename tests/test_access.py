"""Who may do what: reviewers see their mailboxes only, supervisors all and the stats."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from drafts.ingest import ingest_message
from drafts.models import Attachment, Draft, Mailbox, Message
from tests.conftest import mail_bytes, make_ready_draft

pytestmark = pytest.mark.django_db


@pytest.fixture
def sales(db) -> Mailbox:
    return Mailbox.objects.create(name="sales", address="sales@acme.example")


@pytest.fixture
def dave(sales) -> User:
    """A reviewer of the sales mailbox only."""
    user = User.objects.create_user("dave", "dave@acme.example", "dave-password-1")
    sales.reviewers.add(user)
    return user


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_reviewer_cannot_reach_another_mailboxs_mail_by_guessing_ids(mailbox, dave):
    draft = make_ready_draft(mailbox, "with_attachment.eml")
    attachment = Attachment.objects.filter(message=draft.message).first()
    client = login(dave)
    for url in (
        reverse("draft", args=[draft.pk]),
        reverse("message", args=[draft.message_id]),
        reverse("message_body", args=[draft.message_id]),
        reverse("attachment", args=[attachment.pk]),
    ):
        assert client.get(url).status_code == 404, url
    for url, data in (
        (reverse("draft_action", args=[draft.pk]), {"action": "approve", "reply_text": "x"}),
        (reverse("draft_claim", args=[draft.pk]), {}),
    ):
        assert client.post(url, data).status_code == 404, url
    assert Draft.objects.get(pk=draft.pk).status == Draft.READY
    assert Draft.objects.get(pk=draft.pk).claimed_by is None


def test_the_queue_and_lists_show_only_the_reviewers_mailboxes(mailbox, sales, alice, dave):
    ours = make_ready_draft(mailbox)
    theirs = make_ready_draft(sales, "chinese_gb2312.eml")
    ingest_message(mailbox, mail_bytes("out_of_office.eml"))
    page = login(dave).get(reverse("queue"))
    assert [d.pk for d in page.context["drafts"]] == [theirs.pk]
    assert page.context["tabs"][0]["count"] == 1
    assert list(login(dave).get(reverse("not_drafted")).context["page"]) == []
    assert [d.pk for d in login(alice).get(reverse("queue")).context["drafts"]] == [ours.pk]


def test_failed_drafts_are_retried_only_in_the_reviewers_mailboxes(mailbox, sales, dave):
    ours = make_ready_draft(mailbox, status=Draft.FAILED, error="boom")
    theirs = make_ready_draft(sales, "chinese_gb2312.eml", status=Draft.FAILED, error="boom")
    login(dave).post(reverse("retry_failed"))
    assert Draft.objects.get(pk=ours.pk).status == Draft.FAILED
    assert Draft.objects.get(pk=theirs.pk).status == Draft.QUEUED


def test_a_reviewer_uploads_only_into_their_own_mailbox(mailbox, sales, dave):
    eml = SimpleUploadedFile("a.eml", mail_bytes("inquiry_en.eml"))
    login(dave).post(reverse("upload"), {"files": [eml], "mailbox": mailbox.pk})
    assert Message.objects.get().mailbox == sales


def test_only_supervisors_see_the_stats(alice, carol):
    assert login(alice).get(reverse("stats")).status_code == 403
    assert "Stats" not in login(alice).get(reverse("queue")).text
    assert login(carol).get(reverse("stats")).status_code == 200
    assert "Stats" in login(carol).get(reverse("queue")).text


def test_a_supervisor_sees_every_mailbox(mailbox, sales, carol):
    make_ready_draft(mailbox)
    make_ready_draft(sales, "chinese_gb2312.eml")
    assert len(login(carol).get(reverse("queue")).context["drafts"]) == 2


def test_failed_logins_are_rate_limited(client, alice, settings):
    settings.REPLYHUB_LOGIN_ATTEMPTS = 3
    for _ in range(3):
        response = client.post(reverse("login"), {"username": "alice", "password": "wrong"})
        assert response.status_code == 200
    locked = client.post(reverse("login"), {"username": "alice", "password": "alice-password-1"})
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.text
    assert "_auth_user_id" not in client.session


def test_a_password_change_ends_other_sessions(alice):
    client = Client()
    client.post(reverse("login"), {"username": "alice", "password": "alice-password-1"})
    assert client.get(reverse("queue")).status_code == 200
    alice.set_password("a-new-password-2")
    alice.save()
    assert client.get(reverse("queue")).status_code == 302


def test_logging_out_ends_the_session(alice):
    client = login(alice)
    client.post(reverse("logout"))
    assert client.get(reverse("queue")).status_code == 302


def test_actions_need_a_csrf_token(mailbox, alice):
    draft = make_ready_draft(mailbox)
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(reverse("draft_action", args=[draft.pk]), {"action": "approve"})
    assert response.status_code == 403
    assert Draft.objects.get(pk=draft.pk).status == Draft.READY

"""The stats page: per reviewer, what they decided and how fast."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse

from drafts.models import Draft
from tests.conftest import make_ready_draft

pytestmark = pytest.mark.django_db

EMAILS = ["inquiry_en.eml", "chinese_gb2312.eml", "html_hostile.eml", "reply_in_thread.eml"]


def decided(mailbox, user, name, minutes, action, text=None, reason="tone"):
    draft = make_ready_draft(mailbox, name)
    if action == "approve":
        draft.approve(user, text or draft.generated_text)
    else:
        draft.reject(user, reason)
    Draft.objects.filter(pk=draft.pk).update(ready_at=draft.decided_at - timedelta(minutes=minutes))


def row_for(response, username):
    [row] = [r for r in response.context["rows"] if r.reviewer == username]
    return row


def test_it_counts_decisions_per_reviewer(client, mailbox, alice, bob, carol):
    decided(mailbox, alice, EMAILS[0], 2, "approve")
    decided(mailbox, alice, EMAILS[1], 4, "approve", text="尊敬的李娜：\n\n已为您报价。\n\nAcme")
    decided(mailbox, alice, EMAILS[2], 10, "reject")
    decided(mailbox, bob, EMAILS[3], 30, "approve")
    client.force_login(carol)
    response = client.get(reverse("stats"))
    a = row_for(response, "alice")
    assert (a.approved_unchanged, a.approved_edited, a.rejected) == (1, 1, 1)
    assert a.median_display == "4m 00s"
    b = row_for(response, "bob")
    assert (b.approved_unchanged, b.approved_edited, b.rejected) == (1, 0, 0)
    assert b.median_display == "30m 00s"
    assert [r.reviewer for r in response.context["rows"]] == ["alice", "bob"]
    assert 'class="bar"' in response.text


def test_whitespace_changes_do_not_count_as_edits(client, mailbox, alice, carol):
    draft = make_ready_draft(mailbox)
    draft.approve(alice, draft.generated_text.replace("\n\n", "\n\n  ") + "\n")
    client.force_login(carol)
    row = row_for(client.get(reverse("stats")), "alice")
    assert (row.approved_unchanged, row.approved_edited) == (1, 0)


def test_it_shows_an_empty_state(client, carol):
    client.force_login(carol)
    assert "No decisions yet." in client.get(reverse("stats")).text


def test_undecided_drafts_are_not_counted(client, carol, mailbox):
    client.force_login(carol)
    make_ready_draft(mailbox)
    assert client.get(reverse("stats")).context["rows"] == []

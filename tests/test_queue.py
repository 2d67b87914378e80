"""The review queue: filters, search, paging and the self-refreshing table."""

from __future__ import annotations

import pytest
from django.urls import reverse

from drafts import views
from drafts.models import Draft
from tests.conftest import make_ready_draft

pytestmark = pytest.mark.django_db


def listed(client, **query) -> list[int]:
    return [d.pk for d in client.get(reverse("queue"), query).context["drafts"]]


@pytest.fixture
def three(mailbox, alice):
    english = make_ready_draft(mailbox)
    chinese = make_ready_draft(
        mailbox, "chinese_gb2312.eml", intent="complaint", language="zh", flags=["too_long"]
    )
    assigned = make_ready_draft(mailbox, "with_attachment.eml", assigned_to=alice)
    return english, chinese, assigned


def test_drafts_are_listed_oldest_first_or_newest_first(alice_client, three):
    ids = [d.pk for d in three]
    assert listed(alice_client) == ids
    assert listed(alice_client, order="newest") == ids[::-1]


def test_filters_narrow_the_queue(alice_client, three):
    _, chinese, assigned = three
    assert listed(alice_client, intent="complaint") == [chinese.pk]
    assert listed(alice_client, language="zh") == [chinese.pk]
    assert listed(alice_client, flagged="1") == [chinese.pk]
    assert listed(alice_client, mine="1") == [assigned.pk]
    assert listed(alice_client, intent="no-such-intent") == [d.pk for d in three]


def test_search_looks_in_subject_sender_and_text(alice_client, three):
    english, chinese, _ = three
    assert listed(alice_client, q="Pricing for Acme") == [english.pk]
    assert listed(alice_client, q=english.message.from_address.upper()) == [english.pk]
    word = chinese.message.text.split()[0][:4]
    assert chinese.pk in listed(alice_client, q=word)
    assert listed(alice_client, q="nothing-like-this-anywhere") == []


def test_counts_follow_the_filters(alice_client, three):
    tabs = alice_client.get(reverse("queue"), {"language": "zh"}).context["tabs"]
    assert tabs[0]["count"] == 1


def test_the_queue_is_paged(alice_client, mailbox, monkeypatch):
    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    drafts = [
        make_ready_draft(mailbox, name)
        for name in ("inquiry_en.eml", "chinese_gb2312.eml", "with_attachment.eml")
    ]
    assert listed(alice_client) == [drafts[0].pk, drafts[1].pk]
    second = alice_client.get(reverse("queue"), {"page": 2})
    assert [d.pk for d in second.context["drafts"]] == [drafts[2].pk]
    assert "Page 2 of 2 · 3 drafts" in second.text


def test_the_table_alone_is_served_for_the_refresh(alice_client, three):
    response = alice_client.get(reverse("queue"), {"fragment": "1"})
    assert response.text.lstrip().startswith('<div id="queue-live"')
    assert "<html" not in response.text
    assert f'data-draft="{three[0].pk}"' in response.text
    Draft.objects.filter(pk=three[0].pk).update(status=Draft.REJECTED)
    again = alice_client.get(reverse("queue"), {"fragment": "1"})
    assert f'data-draft="{three[0].pk}"' not in again.text

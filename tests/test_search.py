"""Full-text search in the queue: Chinese and English, kept current, indexed by the database."""

from __future__ import annotations

import pytest
from django.core.management.sql import emit_post_migrate_signal
from django.db import connection
from django.urls import reverse

from drafts import search, views
from drafts.models import Message
from tests.conftest import make_ready_draft

pytestmark = pytest.mark.django_db


def found(client, query: str) -> list[int]:
    return [d.pk for d in client.get(reverse("queue"), {"q": query}).context["drafts"]]


@pytest.fixture
def english(mailbox):
    return make_ready_draft(mailbox)  # "Pricing for Acme CRM, 25 seats", Olivia Brown


@pytest.fixture
def chinese(mailbox):
    # 询问一下价格 from 李娜: 您好，请问艾克美客服云的价格是多少？我们想在12月3日之前决定。
    return make_ready_draft(mailbox, "chinese_gb2312.eml", language="zh")


def test_chinese_is_found_by_any_part_of_a_phrase(alice_client, english, chinese):
    for query in ("价格", "客服云", "艾克美客服云的价格", "美客", "李娜", "云"):
        assert found(alice_client, query) == [chinese.pk], query
    assert found(alice_client, "客服价格") == []  # the characters, but not in that order


def test_english_words_match_whole_or_as_a_prefix_in_any_case(alice_client, english, chinese):
    for query in ("pricing", "PRICING", "Pric", "acme crm", "Olivia", "olivia.brown@north"):
        assert found(alice_client, query) == [english.pk], query
    assert found(alice_client, "ricing") == []  # the middle of a word is not a word
    assert found(alice_client, "pric acme") == []  # only the last word is a prefix


def test_every_term_must_match(alice_client, english, chinese):
    assert found(alice_client, "Acme 价格") == []
    assert found(alice_client, "12月3日 决定") == [chinese.pk]
    assert found(alice_client, "Professional API December") == [english.pk]


def test_a_query_without_words_does_not_filter(alice_client, english, chinese):
    assert sorted(found(alice_client, "  ?!  ")) == sorted([english.pk, chinese.pk])
    page = alice_client.get(reverse("queue"), {"q": '"*) OR (*'})
    assert page.status_code == 200  # search syntax typed by a user is words, not syntax


def test_an_edited_message_is_found_by_its_new_text_only(alice_client, english):
    message = english.message
    message.subject = "Renewal of our 发票"
    message.save()
    assert found(alice_client, "renewal") == [english.pk]
    assert found(alice_client, "发票") == [english.pk]
    assert found(alice_client, "evaluating") == [english.pk]  # still in the body
    message.text = "Nothing else."
    message.save(update_fields=["text"])
    assert found(alice_client, "evaluating") == []


def test_a_deleted_message_leaves_the_index(alice_client, english, chinese):
    chinese.message.delete()
    assert found(alice_client, "价格") == []
    if connection.vendor == "sqlite":  # the FTS table itself no longer holds the row
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM drafts_message_fts WHERE drafts_message_fts MATCH '\"价格\"'"
            )
            assert cursor.fetchone()[0] == 0


def test_the_index_is_rebuilt_after_a_migration_that_dropped_it(alice_client, mailbox):
    """On SQLite, Django rebuilds a table for many column changes, dropping its triggers."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            for name in ("insert", "delete", "update"):
                cursor.execute(f"DROP TRIGGER drafts_message_fts_{name}")
        else:  # the index and the stored vector it is built on
            cursor.execute("ALTER TABLE drafts_message DROP COLUMN search_vector")
    late = make_ready_draft(mailbox, "chinese_gb2312.eml")  # stored while the index was gone
    if connection.vendor == "postgresql":  # as after a real migrate: no deferred checks pending
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")
    assert found(alice_client, "价格") == [late.pk]
    assert search.ensure_index(connection) is False  # and it is complete again


def test_long_messages_are_searchable_by_their_beginning(mailbox):
    text = "开头的话 " + "长" * (search.MAX_DOCUMENT_CHARS * 2)
    indexed = search.document("subject", "", "", text)
    assert indexed.startswith("subject 开头 头的 的话 话")
    assert len(indexed) < search.MAX_DOCUMENT_CHARS * 4
    message = Message.objects.create(
        mailbox=mailbox, sha256="f" * 64, subject="subject", text=text, raw=b""
    )
    assert message.search_text == indexed


def test_a_broad_search_counts_up_to_a_limit_and_says_so(alice_client, mailbox, monkeypatch):
    monkeypatch.setattr(views, "SEARCH_COUNT_LIMIT", 1)
    for name in ("inquiry_en.eml", "with_attachment.eml", "reply_in_thread.eml"):
        make_ready_draft(mailbox, name)
    everything = alice_client.get(reverse("queue"))
    assert everything.context["tabs"][0]["count"] == 3
    assert b"search-capped" not in everything.content
    page = alice_client.get(reverse("queue"), {"q": "olivia"})  # two of the three
    assert page.context["at_least"] is True
    assert 'class="count">1+<' in page.content.decode()  # at least the one counted
    assert b"search-capped" in page.content
    narrow = alice_client.get(reverse("queue"), {"q": "fabrikam"})
    assert narrow.context["at_least"] is False
    assert narrow.context["tabs"][0]["count"] == 1

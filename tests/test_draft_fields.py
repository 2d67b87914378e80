"""The extracted fields on the draft page: labelled, and marked where the email says them."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import translation

from drafts.fields import annotate, describe_flag
from tests.conftest import make_ready_draft


@pytest.fixture(autouse=True)
def _in_english():
    """Labels are lazy: read them in English whatever a request before this activated."""
    with translation.override("en"):
        yield


TEXT = "Hi, this is Olivia Brown. Order AC-1 arrived broken on 3 March; call 138-0013-8000."


def entry(value: str, source: str = "pattern", verified: bool = True) -> dict:
    return {"value": value, "source": source, "span": None, "verified": verified}


def test_the_text_is_cut_around_each_value_and_nothing_is_lost():
    fields = {
        "customer_name": [entry("olivia brown", "header")],  # found whatever the case
        "order_numbers": [entry("AC-1")],
        "phone_numbers": [entry("138-0013-8000")],
    }
    rows, segments = annotate(TEXT, fields)
    assert "".join(s.text for s in segments) == TEXT
    marked = [(s.text, s.field, s.anchor) for s in segments if s.anchor]
    assert marked == [
        ("Olivia Brown", "customer_name", "source-customer_name-0"),
        ("AC-1", "order_numbers", "source-order_numbers-0"),
        ("138-0013-8000", "phone_numbers", "source-phone_numbers-0"),
    ]
    assert [r.label for r in rows] == ["Customer name", "Order numbers", "Phone numbers"]
    assert rows[0].values[0].source == "the sender's name"


def test_unverified_absent_and_overlapping_values_mark_nothing():
    fields = {
        "product": [entry("broken", "model", verified=False)],  # in the text, but unverified
        "problem": [entry("a leaking roof", "model", verified=False)],
        "key_dates": [entry("3 March"), entry("March")],  # the second overlaps the first
    }
    rows, segments = annotate(TEXT, fields)
    assert [s.text for s in segments if s.anchor] == ["3 March"]
    dates = [(v.value, v.anchor) for v in rows[2].values]
    assert dates == [("3 March", "source-key_dates-0"), ("March", "")]
    assert rows[0].values[0].verified is False


def test_no_fields_leave_the_text_whole():
    rows, segments = annotate(TEXT, {})
    assert rows == [] and [s.text for s in segments] == [TEXT]


@pytest.mark.django_db
def test_the_draft_page_marks_the_values_in_the_email(alice_client, mailbox):
    fields = {"key_dates": [entry("December 15")], "customer_name": [entry("Olivia", "header")]}
    draft = make_ready_draft(mailbox, fields=fields)
    page = alice_client.get(reverse("draft", args=[draft.pk])).content.decode()
    assert '<mark id="source-key_dates-0" class="field-source" data-field="key_dates">' in page
    assert 'href="#source-key_dates-0"' in page
    assert "<th>Key dates</th>" in page and "<th>key_dates</th>" not in page


@pytest.mark.django_db
def test_a_value_with_markup_is_shown_as_text(alice_client, mailbox):
    draft = make_ready_draft(mailbox, fields={"product": [entry("<b>x</b>", "model", False)]})
    page = alice_client.get(reverse("draft", args=[draft.pk])).content.decode()
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page


@pytest.mark.parametrize(
    ("flag", "shown"),
    [
        ("placeholder_text", "The reply still has placeholder text such as “[Your Name]”."),
        ("too_long: over 200 characters", "The reply is too long: over 200 characters"),
        ("unverified_field: product", "Suggested by the model but not found in the email: Product"),
        (
            'prompt_injection: instructions to the assistant (in hidden text) — "ignore"',
            'Possible prompt injection: instructions to the assistant (in hidden text) — "ignore"',
        ),
        ("something_new: kept as it is", "something_new: kept as it is"),
    ],
)
def test_flags_read_as_sentences(flag, shown):
    assert describe_flag(flag) == shown


@pytest.mark.django_db
def test_a_chinese_reviewer_reads_the_flags_in_chinese(client, alice, mailbox):
    from drafts.models import StaffProfile

    StaffProfile.objects.create(user=alice, language="zh-hans")
    draft = make_ready_draft(mailbox, flags=["language_mismatch: x", "too_long: over 120 words"])
    client.force_login(alice)
    page = client.get(reverse("draft", args=[draft.pk])).text
    assert "⚑ 来信是中文，回复却不是中文。" in page
    assert "⚑ 回复过长： 超过 120 个单词" in page

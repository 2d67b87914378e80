"""The stats page: per reviewer, what they decided and how fast."""

from __future__ import annotations

import csv
import importlib
import io
from datetime import timedelta

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from drafts import stats
from drafts.models import Draft, Mailbox, PromptTemplate, edit_distance
from tests.conftest import make_ready_draft

pytestmark = pytest.mark.django_db

EMAILS = ["inquiry_en.eml", "chinese_gb2312.eml", "html_hostile.eml", "reply_in_thread.eml"]
PROMPTS = {"system_prompt": "s", "analysis_prompt": "a", "reply_prompt": "{email}"}


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


# --- Breakdowns over a date range ------------------------------------------------------------


def table(response, name):
    [section] = [s for s in response.context["sections"] if s["name"] == name]
    return {r.label: r for r in section["rows"]}


@pytest.fixture
def known_set(mailbox, alice, bob):
    """Five decisions in two mailboxes with two template versions, and one from long ago."""
    sales = Mailbox.objects.create(name="sales", address="sales@acme.example")
    v1 = PromptTemplate.objects.create(name="polite", version=1, is_active=False, **PROMPTS)
    v2 = PromptTemplate.objects.create(name="polite", version=2, **PROMPTS)
    unchanged = make_ready_draft(mailbox, EMAILS[0], template=v1)
    unchanged.approve(alice, unchanged.generated_text)
    edited = make_ready_draft(mailbox, EMAILS[1], template=v2, intent="complaint")
    edited.approve(alice, "Dear Olivia Brown,\n\nWe have refunded you.\n\nAcme Cloud Support Team")
    make_ready_draft(mailbox, EMAILS[2], template=v2).reject(alice, "wrong_facts")
    make_ready_draft(sales, EMAILS[0], template=v2, intent="complaint").reject(bob, "tone")
    make_ready_draft(sales, EMAILS[3], template=v2).reject(bob, "tone")
    Draft.objects.filter(pk=unchanged.pk).update(status=Draft.SENT)
    Draft.objects.filter(pk=edited.pk).update(status=Draft.SEND_FAILED)
    old = make_ready_draft(mailbox, EMAILS[3])
    old.approve(bob, old.generated_text)
    Draft.objects.filter(pk=old.pk).update(decided_at=timezone.now() - timedelta(days=60))
    return {"unchanged": unchanged, "edited": edited, "sales": sales}


def test_an_approval_stores_its_edit_distance(known_set):
    unchanged, edited = known_set["unchanged"], known_set["edited"]
    unchanged.refresh_from_db()
    edited.refresh_from_db()
    assert unchanged.edit_distance == 0
    assert 0 < edited.edit_distance < 1
    assert edited.edit_distance == pytest.approx(
        edit_distance(edited.generated_text, edited.reply_text)
    )
    assert edit_distance("Dear  Olivia,\n\nThanks.", "Dear Olivia,\nThanks.\n") == 0


def test_it_breaks_decisions_down_four_ways(client, carol, known_set):
    client.force_login(carol)
    response = client.get(reverse("stats"))
    reviewers = table(response, "reviewer")
    a, b = reviewers["alice"], reviewers["bob"]
    assert (a.decided, a.approved_unchanged, a.approved_edited, a.rejected) == (3, 1, 1, 1)
    assert (a.sent, a.send_failed) == (1, 1)
    assert a.reasons["wrong_facts"] == 1 and a.reasons["tone"] == 0
    assert (b.decided, b.rejected, b.reasons["tone"]) == (2, 2, 2)
    assert b.median_edit is None
    # The median of 0 (unchanged) and the edited draft's distance, to a millionth.
    edited = Draft.objects.get(pk=known_set["edited"].pk).edit_distance
    assert a.median_edit == pytest.approx(edited / 2, abs=1e-5)
    intents = table(response, "intent")
    assert intents["inquiry · 咨询"].decided == 3
    assert (intents["complaint · 投诉"].approved_edited, intents["complaint · 投诉"].rejected) == (
        1,
        1,
    )
    assert intents["complaint · 投诉"].median_edit == pytest.approx(edited, abs=1e-5)
    templates = table(response, "template")
    assert (templates["polite v1"].decided, templates["polite v2"].decided) == (1, 4)
    assert templates["polite v1"].median_edit == 0
    mailboxes = table(response, "mailbox")
    assert (mailboxes["default"].decided, mailboxes["sales"].decided) == (3, 2)
    assert mailboxes["sales"].reasons["tone"] == 2
    page = response.text
    assert "Wrong or invented facts: <strong>1</strong>" in page
    assert "polite v2" in page and "complaint · 投诉" in page


def test_the_date_range_filters_by_decision_time(client, carol, known_set):
    client.force_login(carol)
    bob = table(client.get(reverse("stats")), "reviewer")["bob"]
    assert bob.decided == 2  # the approval 60 days ago is outside the last 30 days
    start = (timezone.localdate() - timedelta(days=89)).isoformat()
    end = timezone.localdate().isoformat()
    response = client.get(reverse("stats"), {"from": start, "to": end})
    assert table(response, "reviewer")["bob"].decided == 3
    assert len(response.context["sections"][0]["rows"]) == 2
    old_day = (timezone.localdate() - timedelta(days=60)).isoformat()
    response = client.get(reverse("stats"), {"from": old_day, "to": old_day})
    assert list(table(response, "reviewer")) == ["bob"]
    assert sum(d.decided for d in stats.trend(response.context["dates"])) == 1


def test_a_bad_date_shows_a_message_and_the_default_range(client, carol, known_set):
    client.force_login(carol)
    for query in (
        {"from": "2026-13-01"},
        {"from": "yesterday"},
        {"from": "2026-05-02", "to": "2026-05-01"},
    ):
        response = client.get(reverse("stats"), query)
        assert response.status_code == 200
        assert "Dates must be given as YYYY-MM-DD" in response.text
        dates = response.context["dates"]
        assert (dates.end - dates.start).days == 29 and dates.end == timezone.localdate()
        assert table(response, "reviewer")["alice"].decided == 3
    assert "Dates must be given" not in client.get(reverse("stats")).text


def test_the_trend_counts_each_day(client, carol, known_set):
    client.force_login(carol)
    days = client.get(reverse("stats")).context["dates"]
    trend = stats.trend(days)
    assert len(trend) == 30 and trend[-1].day == timezone.localdate()
    today = trend[-1]
    assert (today.approved_unchanged, today.approved_edited, today.rejected) == (1, 1, 3)
    assert sum(d.decided for d in trend[:-1]) == 0


# --- CSV -------------------------------------------------------------------------------------


def test_each_table_downloads_as_csv(client, carol, known_set):
    client.force_login(carol)
    for name in ("reviewer", "intent", "template", "mailbox", "trend"):
        response = client.get(reverse("stats"), {"format": "csv", "table": name})
        assert response["Content-Type"] == "text/csv; charset=utf-8"
        dates = f"{timezone.localdate() - timedelta(days=29)}-{timezone.localdate()}"
        assert response["Content-Disposition"] == (
            f'attachment; filename="replyhub-stats-{name}-{dates}.csv"'
        )
        assert not response.content.startswith(b"\xef\xbb\xbf")
        assert f"table={name}" in client.get(reverse("stats")).text
    rows = list(
        csv.reader(
            io.StringIO(
                client.get(reverse("stats"), {"format": "csv", "table": "mailbox"}).content.decode()
            )
        )
    )
    assert rows[0][:5] == [
        "Mailbox",
        "Drafts reviewed",
        "Approved unchanged",
        "Approved after edits",
        "Rejected",
    ]
    assert "Rejected: Tone or format not acceptable" in rows[0]
    assert rows[1][:5] == ["default", "3", "1", "1", "1"]
    assert (
        rows[2][0] == "sales"
        and rows[2][rows[0].index("Rejected: Tone or format not acceptable")] == "2"
    )
    trend = list(
        csv.reader(
            io.StringIO(
                client.get(reverse("stats"), {"format": "csv", "table": "trend"}).content.decode()
            )
        )
    )
    assert trend[0] == [
        *("Day", "Approved unchanged", "Approved after edits", "Rejected"),
        *("Answered within the reply target", "Answered after the reply target"),
    ]
    assert trend[-1] == [timezone.localdate().isoformat(), "1", "1", "3", "0", "0"]
    assert len(trend) == 31


def test_a_csv_cell_that_looks_like_a_formula_is_neutralised(client, carol, mailbox):
    Mailbox.objects.filter(pk=mailbox.pk).update(name='=HYPERLINK("http://evil")')
    hacker = User.objects.create_user("@sum", password="x")
    make_ready_draft(mailbox).reject(hacker, "other")
    client.force_login(carol)
    text = client.get(reverse("stats"), {"format": "csv", "table": "mailbox"}).content.decode()
    assert list(csv.reader(io.StringIO(text)))[1][0] == '\'=HYPERLINK("http://evil")'
    text = client.get(reverse("stats"), {"format": "csv", "table": "reviewer"}).content.decode()
    assert list(csv.reader(io.StringIO(text)))[1][0] == "'@sum"


def test_an_unknown_csv_table_is_not_found(client, carol):
    client.force_login(carol)
    assert client.get(reverse("stats"), {"format": "csv", "table": "users"}).status_code == 404


# --- Charts and access ----------------------------------------------------------------------


def test_the_charts_are_inline_svg_with_titles(client, carol, known_set):
    client.force_login(carol)
    page = client.get(reverse("stats")).text
    assert page.count("<svg") == 5
    assert '<svg class="chart trend" role="img"' in page
    assert "<title id=" in page and "Decisions per day, " in page
    assert 'aria-label="Decisions per mailbox"' in page


def test_labels_in_charts_are_escaped(client, carol, mailbox):
    evil = User.objects.create_user("<script>", password="x")
    make_ready_draft(mailbox).reject(evil, "other")
    client.force_login(carol)
    page = client.get(reverse("stats")).text
    assert "<script>" not in page
    assert "&lt;script&gt;" in page
    assert 'font-size="12">&lt;script&gt;</text>' in page  # the bar chart's label


def test_reviewers_may_not_see_the_stats(client, alice):
    client.force_login(alice)
    assert client.get(reverse("stats")).status_code == 403
    assert client.get(reverse("stats"), {"format": "csv", "table": "reviewer"}).status_code == 403


def test_the_migration_backfills_edit_distances(known_set):
    migration = importlib.import_module("drafts.migrations.0017_stats")
    Draft.objects.update(edit_distance=None)
    migration.backfill_edit_distance(django_apps, None)
    unchanged = Draft.objects.get(pk=known_set["unchanged"].pk)
    edited = Draft.objects.get(pk=known_set["edited"].pk)
    assert unchanged.edit_distance == 0
    assert edited.edit_distance == pytest.approx(
        edit_distance(edited.generated_text, edited.reply_text)
    )
    assert not Draft.objects.filter(status=Draft.REJECTED, edit_distance__isnull=False).exists()

"""Reply targets: each mailbox may promise an answer within N hours (complaints sooner); the
queue shows what is due and overdue and orders by it, /metrics counts the overdue, and the
stats say how long answers took and how many came in time."""

from __future__ import annotations

import csv
import importlib
import io
from datetime import datetime, timedelta

import pytest
from django.apps import apps as django_apps
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from drafts import tasks
from drafts.daily import DayTotal
from drafts.ingest import ingest_message
from drafts.metrics import exposition
from drafts.models import Draft, Mailbox
from tests.apiclient import ScriptedModel, api_for, draft_url
from tests.conftest import mail_bytes, make_ready_draft

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)


@pytest.fixture
def targeted(mailbox) -> Mailbox:
    mailbox.reply_within_hours = 24
    mailbox.complaints_within_hours = 4
    mailbox.save()
    return mailbox


def arrived(draft: Draft, ago: timedelta) -> Draft:
    """Pretend the draft's email arrived ``ago`` (its due time moves with it)."""
    received = timezone.now() - ago
    Draft.objects.filter(pk=draft.pk).update(
        created_at=received, due_at=draft.mailbox.due_at(draft.intent, received)
    )
    return Draft.objects.get(pk=draft.pk)


def test_an_email_is_due_its_mailbox_target_after_it_arrives(targeted):
    before = timezone.now()
    message, _ = ingest_message(targeted, mail_bytes("inquiry_en.eml"))
    draft = message.draft
    assert before + 24 * HOUR <= draft.due_at <= timezone.now() + 24 * HOUR


def test_without_a_target_nothing_is_due(mailbox):
    message, _ = ingest_message(mailbox, mail_bytes("inquiry_en.eml"))
    assert message.draft.due_at is None


def test_a_complaint_is_due_sooner_once_the_model_recognises_it(targeted, monkeypatch):
    message, _ = ingest_message(targeted, mail_bytes("chinese_gb2312.eml"))
    draft = message.draft
    assert draft.due_at - draft.created_at == pytest.approx(24 * HOUR, abs=timedelta(seconds=1))
    monkeypatch.setattr(tasks, "configured_backend", lambda: ScriptedModel())  # a complaint
    assert tasks.generate_draft(draft.pk) == "ready: 1"
    draft.refresh_from_db()
    assert draft.intent == "complaint"
    assert draft.due_at == draft.created_at + 4 * HOUR


def test_changing_a_target_moves_the_open_drafts_only(targeted, alice):
    waiting = make_ready_draft(targeted)
    complaint = make_ready_draft(targeted, "chinese_gb2312.eml", intent="complaint")
    decided = make_ready_draft(targeted, "with_attachment.eml")
    assert decided.approve(alice, decided.reply_text)
    decided_due = Draft.objects.get(pk=decided.pk).due_at

    targeted.reply_within_hours = 8
    targeted.complaints_within_hours = 2
    targeted.save()
    for draft, hours in ((waiting, 8), (complaint, 2)):
        draft.refresh_from_db()
        assert draft.due_at == draft.created_at + hours * HOUR
    # A decision was made against the target of its time: the stats must not move it.
    assert Draft.objects.get(pk=decided.pk).due_at == decided_due

    targeted.complaints_within_hours = None  # complaints fall back to the mailbox's target
    targeted.save()
    complaint.refresh_from_db()
    assert complaint.due_at == complaint.created_at + 8 * HOUR
    targeted.reply_within_hours = None
    targeted.save()
    assert not Draft.objects.filter(pk__in=[waiting.pk, complaint.pk], due_at__isnull=False)


def test_a_target_is_a_whole_number_of_hours_from_one(mailbox):
    mailbox.reply_within_hours = 0
    with pytest.raises(ValidationError) as refused:
        mailbox.full_clean()
    assert "reply_within_hours" in refused.value.message_dict


# -- the queue ------------------------------------------------------------------------------


@pytest.fixture
def three_due(targeted):
    """Overdue by 2 h, due in 3 h, due in 20 h; and one of another mailbox with no target."""
    overdue = arrived(make_ready_draft(targeted, "with_attachment.eml"), 26 * HOUR)
    later = arrived(make_ready_draft(targeted), 4 * HOUR)
    soon = arrived(make_ready_draft(targeted, "chinese_gb2312.eml", intent="complaint"), HOUR)
    other = Mailbox.objects.create(name="sales", address="sales@acme.example")
    untimed = make_ready_draft(other, "reply_in_thread.eml")
    return overdue, soon, later, untimed


def test_the_queue_shows_when_each_email_is_due(client, carol, three_due):
    overdue, soon, later, untimed = three_due
    client.force_login(carol)
    html = client.get(reverse("queue")).content.decode()
    row = {d.pk: html.split(f'data-draft="{d.pk}"')[1].split("</tr>")[0] for d in three_due}
    assert '<span class="due overdue"' in row[overdue.pk]
    assert "overdue by 2\xa0hours" in row[overdue.pk]
    assert "in 2\xa0hours" in row[soon.pk]  # a complaint: 4 h after it arrived 1 h ago
    assert "in 19\xa0hours" in row[later.pk]
    assert "due" not in row[untimed.pk]


def test_the_queue_orders_by_due_time_and_filters_the_overdue(client, carol, three_due):
    overdue, soon, later, untimed = three_due
    client.force_login(carol)

    def listed(**query):
        return [d.pk for d in client.get(reverse("queue"), query).context["drafts"]]

    assert listed(order="due") == [overdue.pk, soon.pk, later.pk, untimed.pk]
    assert listed(overdue="1") == [overdue.pk]
    page = client.get(reverse("queue"), {"overdue": "1"})
    assert dict((t["key"], t["count"]) for t in page.context["tabs"])["review"] == 1
    # Answered now: no longer overdue, nor shown as due.
    Draft.objects.get(pk=overdue.pk).reject(None, "no_reply_needed")
    assert listed(overdue="1") == []
    html = client.get(reverse("queue"), {"tab": "rejected"}).content.decode()
    assert "overdue by" not in html


def test_the_draft_page_and_the_api_say_when_it_is_due(client, alice, three_due):
    overdue = three_due[0]
    client.force_login(alice)
    html = client.get(reverse("draft", args=[overdue.pk])).content.decode()
    assert "reply overdue by 2\xa0hours" in html.split('class="draft-head"')[1].split("</div>")[0]
    body = api_for(alice).get(draft_url(overdue)).json()
    due = datetime.fromisoformat(body["due_at"].replace("Z", "+00:00"))
    assert abs(due - overdue.due_at) < timedelta(milliseconds=1)


def test_metrics_count_the_overdue(three_due):
    assert b"replyhub_drafts_overdue 1.0" in exposition()


# -- the stats ------------------------------------------------------------------------------


def test_the_stats_say_how_fast_and_how_often_in_time(client, alice, bob, carol, targeted):
    # alice answers two emails, 3 h and 30 h after they arrived (24 h target: one late);
    # bob answers a complaint 5 h after (4 h target: late) and rejects one (not an answer).
    for user, name, hours, intent in (
        (alice, "inquiry_en.eml", 3, "inquiry"),
        (alice, "with_attachment.eml", 30, "inquiry"),
        (bob, "chinese_gb2312.eml", 5, "complaint"),
    ):
        draft = arrived(make_ready_draft(targeted, name, intent=intent), hours * HOUR)
        assert draft.approve(user, draft.reply_text)
    rejected = arrived(make_ready_draft(targeted, "reply_in_thread.eml"), 50 * HOUR)
    assert rejected.reject(bob, "no_reply_needed")

    client.force_login(carol)
    page = client.get(reverse("stats"))
    rows = {r.label: r for r in page.context["rows"]}
    assert rows["alice"].median_answer_seconds == pytest.approx(16.5 * 3600, abs=2)
    assert (rows["alice"].on_time, rows["alice"].targeted) == (1, 2)
    assert rows["alice"].on_time_display == "50% (1/2)"
    assert rows["bob"].answer_display == "5h 00m"
    assert (rows["bob"].on_time, rows["bob"].targeted) == (0, 1)
    html = page.content.decode()
    assert "Replies within their reply target" in html
    assert '<svg class="chart trend"' in html.split("stats-on-time")[1]
    assert "answered within the target: 1, answered after the target: 2" in html

    trend = list(csv.reader(io.StringIO(client.get(
        reverse("stats"), {"format": "csv", "table": "trend"}
    ).content.decode())))  # fmt: skip
    assert trend[-1][-2:] == ["1", "2"]
    table = list(csv.reader(io.StringIO(client.get(
        reverse("stats"), {"format": "csv", "table": "reviewer"}
    ).content.decode())))  # fmt: skip
    by_name = {row[0]: dict(zip(table[0], row, strict=True)) for row in table[1:]}
    assert by_name["alice"]["Median seconds to answer"] == str(round(16.5 * 3600))
    assert by_name["alice"]["Approvals with a reply target"] == "2"
    assert by_name["alice"]["Answered within the reply target"] == "1"


def test_without_targets_the_stats_show_no_on_time_chart(client, carol, alice, mailbox):
    draft = make_ready_draft(mailbox)
    draft.approve(alice, draft.reply_text)
    client.force_login(carol)
    page = client.get(reverse("stats"))
    assert page.context["rows"][0].on_time_display == "–"
    assert "stats-on-time" not in page.content.decode()


def test_the_upgrade_has_the_closed_days_summed_up_again(client, carol, alice, mailbox):
    # Summaries made before this release lack the times to answer: the migration marks
    # them out of date, and the next stats page counts them again.
    draft = make_ready_draft(mailbox)
    draft.approve(alice, draft.reply_text)
    two_days_ago = timezone.now() - timedelta(days=2)  # a closed day, whatever the hour
    Draft.objects.filter(pk=draft.pk).update(
        decided_at=two_days_ago, created_at=two_days_ago - HOUR
    )
    client.force_login(carol)
    client.get(reverse("stats"))
    DayTotal.objects.update(answers=b"")  # as an older release stored it
    assert client.get(reverse("stats")).context["rows"][0].median_answer_seconds is None
    importlib.import_module("drafts.migrations.0026_reply_targets").recount_closed_days(
        django_apps, None
    )
    assert client.get(reverse("stats")).context["rows"][0].median_answer_seconds == 3600


def test_without_any_target_the_queue_has_no_due_column(client, carol, mailbox):
    make_ready_draft(mailbox)
    client.force_login(carol)
    html = client.get(reverse("queue")).content.decode()
    assert "Reply due" not in html and 'name="overdue"' not in html
    assert 'value="due"' not in html


def test_saving_a_mailbox_without_changing_its_targets_leaves_the_drafts_alone(targeted):
    draft = make_ready_draft(targeted)
    stamped = Draft.objects.get(pk=draft.pk).updated_at
    targeted.signoff = "Acme Care Team"
    targeted.save()
    assert Draft.objects.get(pk=draft.pk).updated_at == stamped
    targeted.reply_within_hours = 12
    targeted.save()
    assert Draft.objects.get(pk=draft.pk).updated_at > stamped  # the API's updated_since sees it

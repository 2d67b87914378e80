"""The stats of closed days come from stored daily totals: the same numbers, kept current."""

from __future__ import annotations

import random
from datetime import datetime, time, timedelta
from statistics import median

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db.models import F
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from drafts import daily, stats
from drafts.daily import DayTotal, StatsDay
from drafts.ingest import ingest_message
from drafts.models import Draft, Mailbox, Message, Outbox, PromptTemplate

pytestmark = pytest.mark.django_db

PROMPTS = {"system_prompt": "s", "analysis_prompt": "a", "reply_prompt": "{email}"}
REASONS = [reason for reason, _label in Draft.REJECT_REASONS]
_numbers = iter(range(1, 1_000_000))


def email(subject: str) -> bytes:
    number = next(_numbers)
    return (
        f"From: Customer {number} <c{number}@example.com>\r\nTo: support@acme.example\r\n"
        f"Subject: {subject}\r\nMessage-ID: <m{number}@example.com>\r\n"
        f"Date: Mon, 02 Nov 2026 09:00:00 +0800\r\n\r\nHello, question {number}.\r\n"
    ).encode()


def decision(mailbox, user, when, *, reject=None, edit=False, template=None, intent="inquiry"):
    """A draft decided by ``user`` at ``when``, ``minutes`` after it was ready."""
    message, _ = ingest_message(mailbox, email(f"about {intent}"))
    generated = "Dear customer,\n\nThank you.\n\nAcme"
    Draft.objects.filter(message=message).update(
        status=Draft.READY,
        intent=intent,
        ready_at=timezone.now(),
        generated_text=generated,
        reply_text=generated,
        template=template,
    )
    draft = Message.objects.get(pk=message.pk).draft
    if reject:
        draft.reject(user, reject)
    else:
        draft.approve(user, generated + (" Best wishes." * edit if edit else ""))
    received = when - ANSWERS[draft.pk % 5]
    Draft.objects.filter(pk=draft.pk).update(
        decided_at=when,
        ready_at=when - WAITS[draft.pk % 7],
        created_at=received,
        due_at=mailbox.due_at(intent, received),
    )
    return Draft.objects.get(pk=draft.pk)


WAITS = [timedelta(minutes=m) for m in (1, 3, 7, 20, 45, 90, 300)]
ANSWERS = [timedelta(hours=h) for h in (1, 3, 6, 9, 30)]


def at(days_ago: int, hour: int = 10, minute: int = 0):
    day = timezone.localdate() - timedelta(days=days_ago)
    return timezone.make_aware(datetime.combine(day, time(hour, minute)))


def page(client, days: int = 30):
    today = timezone.localdate()
    query = {"from": (today - timedelta(days=days - 1)).isoformat(), "to": today.isoformat()}
    response = client.get(reverse("stats"), query)
    return {s["name"]: {r.label: r for r in s["rows"]} for s in response.context["sections"]}


@pytest.fixture
def history(mailbox, alice, bob):
    """Forty decisions spread over ten days, two mailboxes, two templates, every outcome."""
    rng = random.Random(7)
    # Reply targets in one mailbox only (8 h, complaints 4 h): some answers in time, some not.
    sales = Mailbox.objects.create(
        name="sales", address="sales@acme.example", reply_within_hours=8, complaints_within_hours=4
    )
    templates = [
        PromptTemplate.objects.create(name="polite", version=1, is_active=False, **PROMPTS),
        PromptTemplate.objects.create(name="polite", version=2, **PROMPTS),
    ]
    drafts = []
    for n in range(40):
        drafts.append(
            decision(
                rng.choice([mailbox, sales]),
                rng.choice([alice, bob]),
                at(rng.randrange(0, 10), rng.randrange(0, 24), rng.randrange(60)),
                reject=rng.choice(REASONS) if n % 3 == 0 else None,
                edit=n % 4 == 1,
                template=rng.choice(templates),
                intent=rng.choice(["inquiry", "complaint", "partnership"]),
            )
        )
    for draft in drafts[1::5]:
        if draft.status == Draft.APPROVED:
            Draft.objects.filter(pk=draft.pk).update(status=Draft.SENT)
    return drafts


def expected(drafts, label_of):
    """The reviewer table computed the slow, obvious way from the drafts themselves."""
    rows = {}
    for draft in Draft.objects.filter(pk__in=[d.pk for d in drafts]):
        row = rows.setdefault(label_of(draft), {
            "decided": 0, "rejected": 0, "edited": 0, "sent": 0, "targeted": 0, "on_time": 0,
            "edits": [], "waits": [], "answers": [],
        })  # fmt: skip
        row["decided"] += 1
        if draft.status == Draft.REJECTED:
            row["rejected"] += 1
        else:
            row["edited"] += draft.edit_distance > 0
            row["edits"].append(draft.edit_distance)
            row["answers"].append((draft.decided_at - draft.created_at).total_seconds())
            if draft.due_at:
                row["targeted"] += 1
                row["on_time"] += draft.decided_at <= draft.due_at
        row["sent"] += draft.status == Draft.SENT
        row["waits"].append((draft.decided_at - draft.ready_at).total_seconds())
    return rows


def assert_matches(table, rows):
    assert set(table) == set(rows)
    for label, want in rows.items():
        got = table[label]
        assert (got.decided, got.rejected, got.approved_edited, got.sent) == (
            want["decided"], want["rejected"], want["edited"], want["sent"],
        )  # fmt: skip
        assert got.median_edit == pytest.approx(median(want["edits"]), abs=1e-6)
        assert got.median_seconds == pytest.approx(median(want["waits"]), abs=1e-3)
        assert got.median_answer_seconds == pytest.approx(median(want["answers"]), abs=1e-3)
        assert (got.targeted, got.on_time) == (want["targeted"], want["on_time"])


def test_closed_days_are_summed_once_and_give_the_same_numbers(client, carol, history):
    client.force_login(carol)
    tables = page(client)
    assert_matches(tables["reviewer"], expected(history, lambda d: d.decided_by.username))
    assert_matches(tables["template"], expected(history, lambda d: str(d.template)))
    assert_matches(tables["mailbox"], expected(history, lambda d: d.mailbox.name))
    closed = [timezone.localdate() - timedelta(days=n) for n in range(1, 30)]
    assert list(StatsDay.objects.values_list("day", flat=True)) == sorted(closed)
    assert all(day.is_current for day in StatsDay.objects.all())
    assert sum(StatsDay.objects.values_list("decisions", flat=True)) == sum(
        1 for d in history if d.decided_at < at(0, 0)
    )
    # The second page reads the stored totals, and they say the same.
    DayTotal.objects.filter(dimension="reviewer").update(decided=F("decided") + 100)
    again = page(client)["reviewer"]
    assert (
        sum(r.decided for r in again.values())
        == len(history) + 100 * DayTotal.objects.filter(dimension="reviewer").count()
    )


def test_the_trend_of_closed_days_comes_from_the_totals(client, carol, history):
    client.force_login(carol)
    page(client)
    dates = stats.DateRange(timezone.localdate() - timedelta(days=9), timezone.localdate())
    trend = stats.trend(dates)
    for day in trend:
        on_day = [d for d in history if timezone.localtime(d.decided_at).date() == day.day]
        assert day.decided == len(on_day)
        assert day.rejected == sum(d.status == Draft.REJECTED for d in on_day)


def test_a_reply_that_fails_after_its_day_closed_is_counted(client, carol, mailbox, alice):
    draft = decision(mailbox, alice, at(3))
    client.force_login(carol)
    assert page(client)["reviewer"]["alice"].send_failed == 0
    outbox = Outbox.objects.get(draft=draft)
    assert outbox.claim()
    assert outbox.mark_failed("550 no such user")
    row = page(client)["reviewer"]["alice"]
    assert (row.send_failed, row.sent) == (1, 0)


def test_a_reply_sent_after_its_day_closed_is_counted(client, carol, mailbox, alice):
    draft = decision(mailbox, alice, at(3))
    client.force_login(carol)
    assert page(client)["reviewer"]["alice"].sent == 0
    outbox = Outbox.objects.get(draft=draft)
    assert outbox.claim() and outbox.mark_sent("250 ok")
    assert page(client)["reviewer"]["alice"].sent == 1


def test_a_decision_written_into_a_closed_day_later_is_counted_from_the_next_night(
    client, carol, mailbox, alice
):
    decision(mailbox, alice, at(5))
    client.force_login(carol)
    assert page(client, days=32)["reviewer"]["alice"].decided == 1  # 31 closed days
    decision(mailbox, alice, at(5, 12), reject="tone")  # an import, a restore
    assert page(client)["reviewer"]["alice"].decided == 1  # pages do not count closed days
    assert daily.summarize_recent() == 1
    row = page(client)["reviewer"]["alice"]
    assert (row.decided, row.rejected) == (2, 1)


def test_a_day_closes_ten_minutes_after_midnight(client, carol, mailbox, alice, monkeypatch):
    decision(mailbox, alice, at(1, 23, 59))
    just_after = timezone.make_aware(datetime.combine(timezone.localdate(), time(0, 5)))
    monkeypatch.setattr(timezone, "now", lambda: just_after)
    client.force_login(carol)
    assert page(client)["reviewer"]["alice"].decided == 1
    assert not StatsDay.objects.filter(day=timezone.localdate() - timedelta(days=1)).exists()
    # An approval of 23:59:59 committing a moment late is still counted.
    decision(mailbox, alice, at(1, 23, 59), reject="tone")
    assert page(client)["reviewer"]["alice"].decided == 2
    monkeypatch.setattr(timezone, "now", lambda: just_after + timedelta(minutes=10))
    assert page(client)["reviewer"]["alice"].decided == 2
    assert StatsDay.objects.get(day=timezone.localdate() - timedelta(days=1)).decisions == 2


def test_deleting_a_draft_or_a_reviewer_updates_the_closed_days(client, carol, mailbox, alice, bob):
    first = decision(mailbox, alice, at(4))
    decision(mailbox, bob, at(4, 11))
    decision(mailbox, bob, at(6))
    client.force_login(carol)
    assert page(client)["reviewer"]["bob"].decided == 2
    first.message.delete()
    assert "alice" not in page(client)["reviewer"]
    bob.delete()
    reviewers = page(client)["reviewer"]
    assert reviewers[stats.NONE_LABEL].decided == 2 and "bob" not in reviewers


def test_a_summary_made_while_a_decision_changes_is_not_trusted(client, carol, mailbox, alice):
    draft = decision(mailbox, alice, at(2))
    real_tally = daily.tally_decisions

    def tally_then_send(start, end):
        counted = real_tally(start, end)  # the summary has read the drafts...
        Draft.objects.filter(pk=draft.pk).update(status=Draft.SENT)  # ...then the send lands
        daily.forget(draft.decided_at)
        return counted

    daily.tally_decisions = tally_then_send
    try:
        daily.summarize([timezone.localdate() - timedelta(days=2)])
    finally:
        daily.tally_decisions = real_tally
    assert not StatsDay.objects.get(day=timezone.localdate() - timedelta(days=2)).is_current
    client.force_login(carol)
    assert page(client)["reviewer"]["alice"].sent == 1


def test_today_is_counted_live(client, carol, mailbox, alice):
    client.force_login(carol)
    page(client)
    decision(mailbox, alice, timezone.now() - timedelta(seconds=5), reject="tone")
    assert page(client)["reviewer"]["alice"].rejected == 1
    assert not StatsDay.objects.filter(day=timezone.localdate()).exists()


@override_settings(TIME_ZONE="Europe/Berlin")
def test_days_follow_the_local_calendar_across_a_clock_change(client, carol, mailbox, alice):
    # Berlin's clocks went back on 25 October 2026: that day had 25 hours.
    zone = timezone.get_current_timezone()
    late = timezone.make_aware(datetime(2026, 10, 25, 23, 30), zone)
    early = timezone.make_aware(datetime(2026, 10, 26, 0, 30), zone)
    decision(mailbox, alice, late)
    decision(mailbox, alice, early, reject="tone")
    dates = stats.DateRange(late.date(), early.date())
    days = {d.day.isoformat(): (d.decided, d.rejected) for d in stats.trend(dates)}
    assert days == {"2026-10-25": (1, 0), "2026-10-26": (1, 1)}


def test_a_nightly_schedule_sums_up_the_days_that_ended(mailbox, alice):
    call_command("migrate", verbosity=0)
    schedule = Schedule.objects.get(func="drafts.daily.summarize_recent")
    assert schedule.schedule_type == Schedule.DAILY
    assert timezone.localtime(schedule.next_run).time() == time(0, 10)
    decision(mailbox, alice, at(1))
    assert daily.summarize_recent() == 31
    assert StatsDay.objects.get(day=timezone.localdate() - timedelta(days=1)).decisions == 1
    assert daily.summarize_recent() == 0  # nothing changed since


def test_a_user_who_is_not_a_reviewer_changes_nothing(client, carol, mailbox, alice):
    decision(mailbox, alice, at(2))
    client.force_login(carol)
    page(client)
    versions = list(StatsDay.objects.values_list("version", flat=True))
    User.objects.create_user("dave", password="x")
    assert list(StatsDay.objects.values_list("version", flat=True)) == versions
    assert page(client)["reviewer"]["alice"].decided == 1

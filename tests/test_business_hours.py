"""Reply targets counted in working hours: an email that arrives on Friday evening is due
on Monday, holidays close the office and make-up working days (调休) open it."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.forms.models import model_to_dict
from django.urls import reverse
from django.utils import timezone

from drafts import tasks
from drafts.admin import MailboxForm
from drafts.business_hours import WorkingCalendar
from drafts.daily import DayTotal
from drafts.models import CalendarDay, Draft, Mailbox, StaffProfile
from tests.apiclient import ScriptedModel
from tests.conftest import make_ready_draft

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")


def at(text: str, zone: ZoneInfo = SHANGHAI) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone)


def office(zone: ZoneInfo = SHANGHAI, **kwargs: object) -> WorkingCalendar:
    week = {"weekdays": frozenset({1, 2, 3, 4, 5}), "opens": time(9), "closes": time(18)}
    return WorkingCalendar(zone=zone, **{**week, **kwargs})


# -- the arithmetic -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arrived", "hours", "due"),
    [
        ("2027-03-16 10:00", 3, "2027-03-16 13:00"),  # Tuesday, within the day
        ("2027-03-16 10:00", 8, "2027-03-16 18:00"),  # exactly at closing
        ("2027-03-16 07:30", 1, "2027-03-16 10:00"),  # before opening: from 9:00
        ("2027-03-16 22:00", 1, "2027-03-17 10:00"),  # at night: from the next morning
        ("2027-03-19 17:00", 8, "2027-03-22 16:00"),  # Friday evening: due on Monday
        ("2027-03-20 10:00", 2, "2027-03-22 11:00"),  # on a Saturday
        ("2027-03-15 09:00", 24, "2027-03-17 15:00"),  # more than a working day
    ],
)
def test_only_working_hours_count(arrived, hours, due):
    assert office().add(at(arrived), hours) == at(due)


def test_a_holiday_closes_the_office_and_a_make_up_day_opens_it():
    national_day = {date(2027, 10, d): False for d in range(1, 8)}  # Fri 1st to Thu 7th
    calendar = office(exceptions={**national_day, date(2027, 10, 9): True})  # Saturday
    assert calendar.add(at("2027-09-30 17:00"), 4) == at("2027-10-08 12:00")
    assert calendar.add(at("2027-10-08 17:00"), 4) == at("2027-10-09 12:00")
    assert office().add(at("2027-09-30 17:00"), 4) == at("2027-10-01 12:00")


def test_hours_are_elapsed_time_across_a_clock_change():
    # Clocks go forward on Sunday 28 March 2027 in Berlin at 2:00: that Sunday's office,
    # 1:00 to 5:00 on the clock, is open three hours, not four.
    calendar = office(BERLIN, weekdays=frozenset(range(1, 8)), opens=time(1), closes=time(5))
    assert calendar.add(at("2027-03-28 01:00", BERLIN), 3) == at("2027-03-28 05:00", BERLIN)
    assert calendar.add(at("2027-03-28 01:00", BERLIN), 3.5) == at("2027-03-29 01:30", BERLIN)


def test_the_office_hours_are_in_the_mailboxs_time_zone():
    berlin = office(BERLIN)
    # 16:00 in Shanghai on a Tuesday in March is 9:00 in Berlin: the Berlin office opens.
    assert berlin.add(at("2027-03-16 16:00"), 1) == at("2027-03-16 10:00", BERLIN)
    assert berlin.add(at("2027-03-16 16:00"), 1).astimezone(UTC).hour == 9


def test_a_calendar_closed_for_over_a_year_falls_back_to_round_the_clock():
    closed = {date(2027, 1, 1) + timedelta(days=n): False for n in range(500)}
    start = at("2027-01-01 10:00")
    assert office(exceptions=closed).add(start, 5) == start + timedelta(hours=5)


# -- mailboxes and drafts -------------------------------------------------------------------


@pytest.fixture
def office_mailbox(mailbox) -> Mailbox:
    mailbox.reply_within_hours = 8
    mailbox.complaints_within_hours = 4
    mailbox.time_zone = "Asia/Shanghai"
    mailbox.save()
    return mailbox


def arrived_at(draft: Draft, when: datetime) -> Draft:
    Draft.objects.filter(pk=draft.pk).update(created_at=when)
    return Draft.objects.get(pk=draft.pk)


@pytest.mark.django_db
def test_turning_working_hours_on_moves_the_open_drafts_only(office_mailbox, alice):
    friday_evening = at("2027-03-19 17:00")
    waiting = arrived_at(make_ready_draft(office_mailbox), friday_evening)
    complaint = make_ready_draft(office_mailbox, "chinese_gb2312.eml", intent="complaint")
    complaint = arrived_at(complaint, friday_evening)
    decided = arrived_at(make_ready_draft(office_mailbox, "with_attachment.eml"), friday_evening)
    assert decided.approve(alice, decided.reply_text)
    decided_due = Draft.objects.get(pk=decided.pk).due_at

    office_mailbox.working_hours_only = True
    office_mailbox.save()

    assert Draft.objects.get(pk=waiting.pk).due_at == at("2027-03-22 16:00")  # Monday
    assert Draft.objects.get(pk=complaint.pk).due_at == at("2027-03-22 12:00")
    assert Draft.objects.get(pk=decided.pk).due_at == decided_due

    office_mailbox.working_hours_only = False
    office_mailbox.save()
    assert Draft.objects.get(pk=waiting.pk).due_at == friday_evening + timedelta(hours=8)


@pytest.mark.django_db
def test_changing_the_office_hours_or_time_zone_moves_the_open_drafts(office_mailbox):
    office_mailbox.working_hours_only = True
    office_mailbox.save()
    draft = arrived_at(make_ready_draft(office_mailbox), at("2027-03-19 17:00"))
    office_mailbox.reschedule_open_drafts()

    office_mailbox.closes_at = time(20)
    office_mailbox.save()
    assert Draft.objects.get(pk=draft.pk).due_at == at("2027-03-22 14:00")  # 3 h on Friday

    office_mailbox.working_days = "123456"  # Saturdays too
    office_mailbox.save()
    assert Draft.objects.get(pk=draft.pk).due_at == at("2027-03-20 14:00")

    office_mailbox.time_zone = "Europe/Berlin"  # Friday 17:00 in Shanghai: 10:00 in Berlin
    office_mailbox.save()
    assert Draft.objects.get(pk=draft.pk).due_at == at("2027-03-19 18:00", BERLIN)


@pytest.mark.django_db
def test_a_holiday_entered_later_moves_the_due_time_and_deleting_it_moves_it_back(
    office_mailbox, client, settings
):
    office_mailbox.working_hours_only = True
    office_mailbox.save()
    draft = arrived_at(make_ready_draft(office_mailbox), at("2027-09-30 17:00"))
    office_mailbox.reschedule_open_drafts()
    assert Draft.objects.get(pk=draft.pk).due_at == at("2027-10-01 16:00")

    national_day = CalendarDay.objects.create(
        name="国庆节", first_day=date(2027, 10, 1), last_day=date(2027, 10, 7)
    )
    assert Draft.objects.get(pk=draft.pk).due_at == at("2027-10-08 16:00")
    CalendarDay.objects.create(name="调休", first_day=date(2027, 10, 9), kind="workday")
    assert Draft.objects.get(pk=draft.pk).due_at == at("2027-10-08 16:00")  # still Friday

    # The admin's "delete selected" deletes a queryset, without calling delete() on each.
    CalendarDay.objects.filter(pk=national_day.pk).delete()
    assert Draft.objects.get(pk=draft.pk).due_at == at("2027-10-01 16:00")


@pytest.mark.django_db
def test_a_mailboxs_own_calendar_day_wins_over_one_for_every_mailbox(office_mailbox):
    office_mailbox.working_hours_only = True
    office_mailbox.save()
    other = Mailbox.objects.create(
        name="export", address="export@acme.example", reply_within_hours=2, working_hours_only=True
    )
    CalendarDay.objects.create(name="劳动节", first_day=date(2027, 5, 3))  # a Monday
    CalendarDay.objects.create(
        name="export desk open", first_day=date(2027, 5, 3), kind="workday", mailbox=other
    )
    friday = at("2027-04-30 17:00")
    assert office_mailbox.due_at("inquiry", friday) == at("2027-05-04 16:00")
    assert other.due_at("inquiry", friday) == at("2027-05-03 10:00")


@pytest.mark.django_db
def test_a_complaint_recognised_by_the_model_is_due_in_working_hours(office_mailbox, monkeypatch):
    office_mailbox.working_hours_only = True
    office_mailbox.save()
    from drafts.ingest import ingest_message
    from tests.conftest import mail_bytes

    message, _ = ingest_message(office_mailbox, mail_bytes("chinese_gb2312.eml"))
    draft = arrived_at(message.draft, at("2027-03-19 17:00"))
    monkeypatch.setattr(tasks, "configured_backend", lambda: ScriptedModel())  # a complaint
    assert tasks.generate_draft(draft.pk) == "ready: 1"
    draft.refresh_from_db()
    assert draft.intent == "complaint"
    assert draft.due_at == at("2027-03-22 12:00")


@pytest.mark.django_db
def test_the_draft_page_says_the_target_counts_working_hours(office_mailbox, client, alice):
    office_mailbox.working_hours_only = True
    office_mailbox.working_days = "123456"
    office_mailbox.save()
    draft = make_ready_draft(office_mailbox)
    client.force_login(alice)
    head = client.get(reverse("draft", args=[draft.pk])).text.split('class="draft-head"')[1]
    head = head.split("</div>")[0]
    assert "counted in working hours: Mon–Sat 09:00–18:00 (Asia/Shanghai)" in head

    StaffProfile.objects.update_or_create(user=alice, defaults={"language": "zh-hans"})
    client.force_login(alice)
    head = client.get(reverse("draft", args=[draft.pk])).text.split('class="draft-head"')[1]
    assert "按工作时间计算：星期一–星期六 09:00–18:00 (Asia/Shanghai)" in head.split("</div>")[0]

    office_mailbox.working_hours_only = False
    office_mailbox.save()
    assert "working hours" not in client.get(reverse("draft", args=[draft.pk])).text


# -- the admin ------------------------------------------------------------------------------


def form_for(mailbox: Mailbox, **changes: object) -> MailboxForm:
    data = {k: v for k, v in model_to_dict(mailbox).items() if v is not None}
    data["reviewers"] = []
    data["working_days"] = list(mailbox.working_days)
    return MailboxForm(data={**data, **changes}, instance=mailbox)


@pytest.mark.django_db
def test_the_mailbox_form_takes_the_working_week_as_ticked_days(office_mailbox):
    form = form_for(office_mailbox, working_days=["1", "3", "5"], working_hours_only=True)
    assert form.is_valid(), form.errors
    form.save()
    assert Mailbox.objects.get(pk=office_mailbox.pk).working_days == "135"
    assert form_for(office_mailbox).initial["working_days"] == ["1", "3", "5"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"working_days": []}, "working_days", "Pick at least one working day."),
        ({"opens_at": "18:00", "closes_at": "09:00"}, "closes_at", "must close after it opens"),
        ({"time_zone": "Asia/Peking"}, "time_zone", "Unknown time zone “Asia/Peking”"),
    ],
)
def test_a_working_week_that_cannot_be_is_refused_by_name(office_mailbox, changes, field, words):
    form = form_for(office_mailbox, **changes)
    assert not form.is_valid()
    assert words in " ".join(form.errors[field])
    assert Mailbox.objects.get(pk=office_mailbox.pk).closes_at == time(18)


@pytest.mark.django_db
def test_an_admin_keeps_the_calendar_days(client, mailbox, dana):
    client.force_login(dana)
    assert "Calendar days" in client.get(reverse("admin:index")).text
    response = client.post(
        reverse("admin:drafts_calendarday_add"),
        {"first_day": "2027-02-06", "kind": "holiday", "name": "春节", "mailbox": ""},
    )
    assert response.status_code == 302, response.text[:3000]
    entry = CalendarDay.objects.get(name="春节")
    assert entry.last_day == date(2027, 2, 6)  # one day, when no last day is given

    refused = client.post(
        reverse("admin:drafts_calendarday_add"),
        {"first_day": "2027-02-06", "last_day": "2072-02-13", "kind": "holiday"},
    )
    assert "At most 31 days in one entry" in refused.text
    refused = client.post(
        reverse("admin:drafts_calendarday_add"),
        {"first_day": "2027-02-13", "last_day": "2027-02-06", "kind": "holiday"},
    )
    assert "The last day comes before the first." in refused.text
    assert CalendarDay.objects.count() == 1


def test_working_seconds_between_two_moments_undo_adding_hours():
    calendar = office(exceptions={date(2027, 3, 22): False})  # Monday closed
    friday = at("2027-03-19 17:00")
    assert calendar.between(friday, at("2027-03-23 10:00")) == 2 * 3600  # Fri 1 h + Tue 1 h
    assert calendar.between(friday, calendar.add(friday, 13.5)) == 13.5 * 3600
    assert calendar.between(at("2027-03-20 10:00"), at("2027-03-20 15:00")) == 0  # a Saturday
    assert calendar.between(friday, friday - timedelta(hours=1)) == 0


def stats_by_mailbox(client) -> dict[str, object]:
    today = timezone.localdate()
    query = {"from": (today - timedelta(days=29)).isoformat(), "to": today.isoformat()}
    sections = client.get(reverse("stats"), query).context["sections"]
    return {row.label: row for s in sections if s["name"] == "mailbox" for row in s["rows"]}


def test_the_stats_count_times_to_answer_in_the_mailboxs_working_hours(
    office_mailbox, alice, carol, client
):
    office_mailbox.working_hours_only = True
    office_mailbox.save()
    around_the_clock = Mailbox.objects.create(name="sales", address="sales@acme.example")
    # A Friday at least a week back, so the stats read its closed days' stored totals.
    friday = timezone.localdate() - timedelta(days=8)
    friday -= timedelta(days=(friday.isoweekday() - 5) % 7)
    arrived = at(f"{friday} 17:00")
    answered = at(f"{friday + timedelta(days=3)} 10:00")  # Monday morning
    for box in (office_mailbox, around_the_clock):
        draft = make_ready_draft(box)
        assert draft.approve(alice, draft.reply_text)
        Draft.objects.filter(pk=draft.pk).update(created_at=arrived, decided_at=answered)
    client.force_login(carol)
    rows = stats_by_mailbox(client)
    assert rows["sales"].median_answer_seconds == 65 * 3600  # Friday 17:00 to Monday 10:00
    assert rows[office_mailbox.name].median_answer_seconds == 2 * 3600  # 17-18 and 9-10
    assert rows[office_mailbox.name].answer_display == "2h 00m"
    assert DayTotal.objects.filter(day=answered.date()).exists()  # a closed day's totals

    office_mailbox.opens_at = time(8)  # the totals are counted again by the new hours
    office_mailbox.save()
    assert stats_by_mailbox(client)[office_mailbox.name].median_answer_seconds == 3 * 3600
    CalendarDay.objects.create(first_day=answered.date(), kind=CalendarDay.HOLIDAY, name="Closed")
    assert stats_by_mailbox(client)[office_mailbox.name].median_answer_seconds == 3600

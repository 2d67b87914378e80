"""Fetching over IMAP from a real Dovecot: exactly once, unread until stored."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from drafts import imap
from drafts.models import Draft, Mailbox, Message
from tests.conftest import mail_bytes
from tests.dovecot import Dovecot

pytestmark = pytest.mark.django_db


@pytest.fixture
def dovecot():
    server = Dovecot()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def imap_mailbox(mailbox, dovecot, monkeypatch) -> Mailbox:
    monkeypatch.setenv("IMAP_PASSWORD", dovecot.password)
    mailbox.imap_host, mailbox.imap_port = "127.0.0.1", dovecot.port
    mailbox.imap_security, mailbox.imap_user = "none", dovecot.user
    mailbox.save()
    return mailbox


def seen(dovecot) -> list[bool]:
    return [b"\\Seen" in flags for flags in dovecot.flags()]


def test_it_fetches_new_mail_and_marks_it_seen_after_storing(imap_mailbox, dovecot):
    dovecot.deliver(mail_bytes("inquiry_en.eml"))
    dovecot.deliver(mail_bytes("out_of_office.eml"))
    report = imap.fetch_mailbox(imap_mailbox)
    assert (report.added, report.drafts, report.no_draft) == (2, 1, 1)
    assert Message.objects.count() == 2
    assert Draft.objects.get().message.message_id == "<fixture-inquiry-1@northwind.example>"
    assert seen(dovecot) == [True, True]
    imap_mailbox.refresh_from_db()
    assert imap_mailbox.imap_last_uid == 2
    assert imap_mailbox.imap_uidvalidity


def test_a_second_run_fetches_only_what_is_new(imap_mailbox, dovecot):
    dovecot.deliver(mail_bytes("inquiry_en.eml"))
    imap.fetch_mailbox(imap_mailbox)
    assert imap.fetch_mailbox(imap_mailbox).added == 0
    dovecot.deliver(mail_bytes("reply_in_thread.eml"))
    report = imap.fetch_mailbox(imap_mailbox)
    assert (report.added, report.duplicates) == (1, 0)
    assert Message.objects.count() == 2


def test_a_crash_before_the_commit_loses_and_duplicates_nothing(imap_mailbox, dovecot, monkeypatch):
    dovecot.deliver(mail_bytes("inquiry_en.eml"))
    dovecot.deliver(mail_bytes("chinese_gb2312.eml"))
    real_ingest = imap.ingest_message
    calls = []

    def crash_on_second(mailbox, raw):
        calls.append(raw)
        if len(calls) == 2:
            raise SystemExit("worker killed")
        return real_ingest(mailbox, raw)

    monkeypatch.setattr(imap, "ingest_message", crash_on_second)
    with pytest.raises(SystemExit):
        imap.fetch_mailbox(imap_mailbox)
    assert Message.objects.count() == 1
    assert seen(dovecot) == [False, False]  # nothing marked read before it was stored

    monkeypatch.setattr(imap, "ingest_message", real_ingest)
    report = imap.fetch_mailbox(Mailbox.objects.get(pk=imap_mailbox.pk))
    assert (report.added, report.duplicates) == (1, 1)
    assert Message.objects.count() == 2
    assert Draft.objects.count() == 2
    assert seen(dovecot) == [True, True]


def test_seen_is_left_alone_when_configured(imap_mailbox, dovecot):
    imap_mailbox.imap_mark_seen = False
    imap_mailbox.save()
    dovecot.deliver(mail_bytes("inquiry_en.eml"))
    imap.fetch_mailbox(imap_mailbox)
    assert seen(dovecot) == [False]


def test_the_command_fetches_and_reports(imap_mailbox, dovecot, capsys):
    dovecot.deliver(mail_bytes("inquiry_en.eml"))
    call_command("fetch_mail")
    assert "default: 1 new message(s)" in capsys.readouterr().out


def test_a_wrong_password_is_a_clear_error(imap_mailbox, dovecot, monkeypatch):
    monkeypatch.setenv("IMAP_PASSWORD", "wrong")
    with pytest.raises(CommandError, match=r"AUTHENTICATIONFAILED|Authentication failed"):
        call_command("fetch_mail")


def test_without_imap_settings_the_command_says_what_is_missing(mailbox):
    with pytest.raises(CommandError, match="No mailbox has IMAP configured"):
        call_command("fetch_mail")


def test_the_schedule_polls_every_configured_mailbox(imap_mailbox, dovecot):
    from django_q.models import Schedule

    assert imap.ensure_schedule()
    assert imap.ensure_schedule()
    schedule = Schedule.objects.get()
    assert (schedule.func, schedule.minutes, schedule.repeats) == ("drafts.imap.fetch_all", 1, -1)
    dovecot.deliver(mail_bytes("inquiry_en.eml"))
    assert imap.fetch_all() == (
        "default: 1 new message(s), 0 already stored, 1 queued for a draft, "
        "0 stored without a draft"
    )


def test_no_schedule_without_imap(mailbox):
    from django_q.models import Schedule

    assert not imap.ensure_schedule()
    assert not Schedule.objects.exists()

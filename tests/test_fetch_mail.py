"""Fetching over IMAP from a real Dovecot: exactly once, unread until stored."""

from __future__ import annotations

import imaplib
import ssl
import threading
import time

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
    schedule = Schedule.objects.get(func="drafts.imap.fetch_all")
    assert (schedule.func, schedule.minutes, schedule.repeats) == ("drafts.imap.fetch_all", 1, -1)
    assert schedule.cluster == "replyhub-io"  # polled by the I/O worker, not behind drafts
    dovecot.deliver(mail_bytes("inquiry_en.eml"))
    assert imap.fetch_all() == (
        "default: 1 new message(s), 0 already stored, 1 queued for a draft, "
        "0 stored without a draft"
    )


def test_no_schedule_without_imap(mailbox):
    from django_q.models import Schedule

    assert not imap.ensure_schedule()
    assert not Schedule.objects.filter(func="drafts.imap.fetch_all").exists()


def stored_ids() -> list[str]:
    return sorted(Message.objects.values_list("message_id", flat=True))


def test_a_changed_uidvalidity_resyncs_without_duplicates_or_gaps(imap_mailbox, dovecot):
    dovecot.deliver(mail_bytes("inquiry_en.eml"))
    dovecot.deliver(mail_bytes("chinese_gb2312.eml"))
    imap.fetch_mailbox(imap_mailbox)
    dovecot.set_uidvalidity(4242)
    dovecot.deliver(mail_bytes("reply_in_thread.eml"))
    report = imap.fetch_mailbox(Mailbox.objects.get(pk=imap_mailbox.pk))
    assert (report.added, report.duplicates) == (1, 2)  # the two known ones not downloaded
    assert Message.objects.count() == 3
    imap_mailbox.refresh_from_db()
    assert (imap_mailbox.imap_uidvalidity, imap_mailbox.imap_last_uid) == (4242, 3)


def test_a_message_deleted_on_the_server_is_skipped_and_what_we_stored_stays(imap_mailbox, dovecot):
    dovecot.deliver(mail_bytes("inquiry_en.eml"))
    imap.fetch_mailbox(imap_mailbox)
    dovecot.deliver(mail_bytes("chinese_gb2312.eml"))
    dovecot.deliver(mail_bytes("reply_in_thread.eml"))
    dovecot.delete(1)
    dovecot.delete(2)
    report = imap.fetch_mailbox(Mailbox.objects.get(pk=imap_mailbox.pk))
    assert report.added == 1
    assert stored_ids() == [
        "<fixture-inquiry-1@northwind.example>",
        "<fixture-inquiry-2@northwind.example>",
    ]


def test_a_connection_dropped_mid_batch_loses_and_duplicates_nothing(
    imap_mailbox, dovecot, settings
):
    from tests.tcp_proxy import DroppingProxy

    settings.IMAP_BATCH_SIZE = 1
    for name in ("inquiry_en.eml", "chinese_gb2312.eml", "reply_in_thread.eml"):
        dovecot.deliver(mail_bytes(name))
    proxy = DroppingProxy(dovecot.port, marker=b"fixture-zh-1@huaxin.example")
    imap_mailbox.imap_port = proxy.port
    with pytest.raises(imap.IMAP_ERRORS):
        imap.fetch_mailbox(imap_mailbox)
    proxy.close()
    assert proxy.dropped.is_set()
    assert stored_ids() == ["<fixture-inquiry-1@northwind.example>"]
    assert seen(dovecot) == [True, False, False]

    mailbox = Mailbox.objects.get(pk=imap_mailbox.pk)
    mailbox.imap_port = dovecot.port
    report = imap.fetch_mailbox(mailbox)
    assert (report.added, report.duplicates) == (2, 0)
    assert Message.objects.count() == 3
    assert seen(dovecot) == [True, True, True]


@pytest.mark.parametrize("security", ["ssl", "starttls"])
def test_it_connects_with_tls(mailbox, monkeypatch, settings, security):
    server = Dovecot(tls=True)
    try:
        monkeypatch.setenv("IMAP_PASSWORD", server.password)
        settings.IMAP_CA_FILE = server.ca_file
        mailbox.imap_host, mailbox.imap_user = "127.0.0.1", server.user
        mailbox.imap_security = security
        mailbox.imap_port = server.imaps_port if security == "ssl" else server.port
        server.deliver(mail_bytes("inquiry_en.eml"))
        assert imap.fetch_mailbox(mailbox).added == 1
        settings.IMAP_CA_FILE = ""  # a self-signed certificate is not trusted by default
        with pytest.raises(ssl.SSLCertVerificationError):
            imap.fetch_mailbox(mailbox)
    finally:
        server.stop()


def test_each_mailbox_has_its_own_account_and_folder(imap_mailbox, dovecot, monkeypatch):
    dovecot.add_user("sales@acme.example", "sales-password")
    monkeypatch.setenv("SALES_IMAP_PASSWORD", "sales-password")
    sales = Mailbox.objects.create(
        name="sales",
        address="sales@acme.example",
        imap_host="127.0.0.1",
        imap_port=dovecot.port,
        imap_security="none",
        imap_user="sales@acme.example",
        imap_password_env="SALES_IMAP_PASSWORD",
        imap_folder="Leads",
    )
    client = imaplib.IMAP4("127.0.0.1", dovecot.port)
    client.login("sales@acme.example", "sales-password")
    client.create("Leads")
    client.append("Leads", "", None, mail_bytes("chinese_gb2312.eml").replace(b"\n", b"\r\n"))
    client.logout()
    dovecot.deliver(mail_bytes("inquiry_en.eml"))
    imap.fetch_all()
    assert list(sales.messages.values_list("subject", flat=True)) == ["询问一下价格"]
    assert imap_mailbox.messages.get().subject == "Pricing for Acme CRM, 25 seats"


@pytest.mark.django_db(transaction=True)
def test_idle_fetches_new_mail_within_seconds(imap_mailbox, dovecot):
    stop = threading.Event()
    fetched = []
    watcher = threading.Thread(
        target=imap.watch, args=(imap_mailbox.pk, stop), kwargs={"on_fetch": fetched.append}
    )
    watcher.start()
    try:
        deadline = time.monotonic() + 20
        while not fetched and time.monotonic() < deadline:
            time.sleep(0.1)  # the first fetch, before it goes idle
        delivered = time.monotonic()
        dovecot.deliver(mail_bytes("inquiry_en.eml"))
        while not Message.objects.exists() and time.monotonic() < delivered + 20:
            time.sleep(0.1)
        assert Message.objects.count() == 1
        assert time.monotonic() - delivered < 5
    finally:
        stop.set()
        watcher.join(timeout=10)
    assert not watcher.is_alive()

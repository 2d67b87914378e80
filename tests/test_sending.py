"""Sending approved replies to a real SMTP server (aiosmtpd): proper reply headers, exactly
one reply per approval, and every way a server can fail."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.urls import reverse
from django.utils import timezone

from drafts.models import Draft, Outbox, ReviewEvent
from drafts.sending import (
    HeaderInjectionError,
    build_reply,
    reply_subject,
    send_draft,
    send_outbox,
    sweep_outbox,
)
from tests.conftest import all_at_once, database_url, free_port, make_ready_draft

pytestmark = pytest.mark.django_db


def approve(mailbox, user, text="Dear Olivia,\n\nThe price is 99 per seat.\n\nAcme") -> Outbox:
    draft = make_ready_draft(mailbox)
    assert draft.approve(user, text)
    return Outbox.objects.get(draft=draft)


def state(outbox: Outbox) -> tuple[str, str]:
    outbox.refresh_from_db()
    return outbox.state, Draft.objects.get(pk=outbox.draft_id).status


def due_now(outbox: Outbox) -> None:
    Outbox.objects.filter(pk=outbox.pk).update(next_attempt_at=timezone.now())


def test_it_sends_a_proper_reply(mailbox, alice, smtp_server):
    outbox = approve(mailbox, alice)
    assert send_outbox(outbox.pk) == "sent"
    [(recipients, sent)] = smtp_server.received
    assert recipients == ["purchasing@northwind.example"]  # Reply-To wins over From
    assert sent["To"] == "purchasing@northwind.example"
    assert sent["From"] == "Acme Support <support@acme.example>"
    assert sent["Subject"] == "Re: Pricing for Acme CRM, 25 seats"
    assert sent["In-Reply-To"] == "<fixture-inquiry-1@northwind.example>"
    assert sent["References"] == "<fixture-inquiry-1@northwind.example>"
    assert sent["Date"]
    assert sent["Message-ID"] == outbox.message_id
    assert sent.get_content_charset() == "utf-8"
    assert "The price is 99 per seat." in sent.get_content()
    assert state(outbox) == (Outbox.SENT, Draft.SENT)
    assert outbox.server_reply.startswith("250")
    draft = outbox.draft
    assert draft.outgoing_message_id == outbox.message_id
    assert draft.message.thread.messages.filter(direction="out").count() == 1


def test_the_message_id_is_stored_before_the_first_attempt(mailbox, alice):
    outbox = approve(mailbox, alice)
    assert outbox.attempts == 0 and outbox.message_id.endswith("@acme.example>")
    assert f"Message-ID: {outbox.message_id}".encode() in bytes(outbox.raw)


def test_running_the_send_task_twice_sends_once(mailbox, alice, smtp_server):
    outbox = approve(mailbox, alice)
    assert send_outbox(outbox.pk) == "sent"
    assert send_outbox(outbox.pk).startswith("skipped")
    assert len(smtp_server.received) == 1


@pytest.mark.django_db(transaction=True)
def test_two_workers_at_once_send_once(mailbox, alice, smtp_server):
    outbox = approve(mailbox, alice)
    results = all_at_once(*[lambda: send_outbox(outbox.pk)] * 4)
    assert len(results) == 4 and results.count("sent") == 1
    assert len(smtp_server.received) == 1


def test_a_draft_is_never_sent_without_approval(mailbox, smtp_server):
    draft = make_ready_draft(mailbox)
    assert not Outbox.objects.filter(draft=draft).exists()
    assert send_draft(draft.pk).startswith("skipped")
    sweep_outbox()
    assert smtp_server.received == []


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Pricing", "Re: Pricing"),
        ("Re: Pricing", "Re: Pricing"),
        ("RE: Pricing", "RE: Pricing"),
        ("回复: 价格", "回复: 价格"),
        ("答复：价格", "答复：价格"),
        ("回覆：價格", "回覆：價格"),
        ("", "Re: your message"),
    ],
)
def test_re_is_not_doubled(subject, expected):
    assert reply_subject(subject) == expected


def test_references_extend_the_thread(mailbox, alice):
    make_ready_draft(mailbox)
    reply = make_ready_draft(mailbox, "reply_in_thread.eml")
    email = build_reply(reply, "<x@acme.example>")
    assert email.extra_headers["References"] == (
        "<fixture-inquiry-1@northwind.example> <fixture-inquiry-2@northwind.example>"
    )


def test_a_line_break_in_a_header_is_refused_and_nothing_is_approved(mailbox, alice):
    draft = make_ready_draft(mailbox)
    draft.message.subject = "Hi\r\nBcc: victim@example.com"
    draft.message.save()
    with pytest.raises(HeaderInjectionError):
        draft.approve(alice, "Dear Olivia,\n\nYes.\n\nAcme")
    draft.refresh_from_db()
    assert draft.status == Draft.READY and not Outbox.objects.exists()


@pytest.mark.parametrize("where", ["refuse_rcpt", "refuse_with"])
def test_a_4xx_answer_is_retried_with_backoff_then_sent_once(mailbox, alice, smtp_server, where):
    setattr(smtp_server, where, "451 4.3.0 Try again later")
    outbox = approve(mailbox, alice)
    assert send_outbox(outbox.pk).startswith("retry")
    assert state(outbox) == (Outbox.RETRY, Draft.APPROVED)
    assert "451 4.3.0 Try again later" in outbox.last_error
    assert outbox.next_attempt_at > timezone.now() + timedelta(seconds=50)
    assert send_outbox(outbox.pk).startswith("skipped")  # not due yet
    setattr(smtp_server, where, None)
    due_now(outbox)
    assert sweep_outbox() == "0 uncertain, 1 queued"
    assert send_outbox(outbox.pk) == "sent"
    assert state(outbox) == (Outbox.SENT, Draft.SENT) and outbox.attempts == 2
    assert len(smtp_server.received) == 1


def test_the_wait_grows_with_each_attempt_and_ends_in_failure(
    mailbox, alice, smtp_server, settings
):
    settings.REPLYHUB_SEND_MAX_ATTEMPTS = 3
    smtp_server.refuse_rcpt = "452 4.2.2 Mailbox full"
    outbox = approve(mailbox, alice)
    waits = []
    for _ in range(3):
        started = timezone.now()
        send_outbox(outbox.pk)
        outbox.refresh_from_db()
        waits.append((outbox.next_attempt_at - started).total_seconds())
        due_now(outbox)
    assert waits[0] == pytest.approx(60, abs=5) and waits[1] == pytest.approx(300, abs=5)
    assert state(outbox) == (Outbox.FAILED, Draft.SEND_FAILED)
    assert "gave up after 3 attempts" in outbox.last_error
    smtp_server.refuse_rcpt = None
    assert outbox.send_again(None)  # a person's decision starts a fresh series of attempts
    assert send_outbox(outbox.pk) == "sent"
    outbox.refresh_from_db()
    assert outbox.attempts == 1


@pytest.mark.parametrize("where", ["refuse_rcpt", "refuse_with"])
def test_a_5xx_answer_fails_for_good_with_the_reason_on_the_draft(
    mailbox, alice, alice_client, smtp_server, where
):
    setattr(smtp_server, where, "550 5.1.1 No such user here")
    outbox = approve(mailbox, alice)
    assert send_outbox(outbox.pk).startswith("failed")
    assert state(outbox) == (Outbox.FAILED, Draft.SEND_FAILED)
    due_now(outbox)
    sweep_outbox()
    assert send_outbox(outbox.pk).startswith("skipped")  # never retried by itself
    assert smtp_server.received == []
    page = alice_client.get(reverse("draft", args=[outbox.draft_id])).text
    assert "550 5.1.1 No such user here" in page and "Retry sending" in page
    assert outbox.draft.events.filter(action=ReviewEvent.SEND_FAILED).exists()


def test_a_server_that_is_down_is_retried(mailbox, alice, settings):
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 2
    outbox = approve(mailbox, alice)
    assert send_outbox(outbox.pk).startswith("retry")
    assert "Connection refused" in state(outbox)[0] + outbox.last_error


def test_a_connection_dropped_before_the_data_is_retried(mailbox, alice, smtp_server):
    smtp_server.drop_at_rcpt = True
    outbox = approve(mailbox, alice)
    assert send_outbox(outbox.pk).startswith("retry")
    smtp_server.drop_at_rcpt = False
    due_now(outbox)
    assert send_outbox(outbox.pk) == "sent"
    assert len(smtp_server.received) == 1


def test_a_connection_dropped_after_the_data_is_uncertain_and_never_resent(
    mailbox, alice, alice_client, smtp_server
):
    smtp_server.drop_after_data = True
    outbox = approve(mailbox, alice)
    assert send_outbox(outbox.pk).startswith("uncertain")
    assert state(outbox) == (Outbox.UNCERTAIN, Draft.SEND_UNCERTAIN)
    smtp_server.drop_after_data = False
    due_now(outbox)
    sweep_outbox()
    assert send_outbox(outbox.pk).startswith("skipped")
    assert len(smtp_server.received) == 1  # the server has it once, and only once
    page = alice_client.get(reverse("draft", args=[outbox.draft_id])).text
    assert "the customer may already have it" in page
    assert "It was delivered" in page and "Send it again (same Message-ID)" in page


def test_a_person_decides_an_uncertain_reply(mailbox, alice, alice_client, smtp_server):
    smtp_server.drop_after_data = True
    outbox = approve(mailbox, alice)
    send_outbox(outbox.pk)
    smtp_server.drop_after_data = False
    version = Draft.objects.get(pk=outbox.draft_id).version
    action = reverse("draft_action", args=[outbox.draft_id])
    alice_client.post(action, {"action": "confirm_sent", "version": version})
    assert state(outbox) == (Outbox.SENT, Draft.SENT)
    assert outbox.draft.events.filter(action=ReviewEvent.CONFIRM_SENT, user=alice).exists()
    assert len(smtp_server.received) == 1


def test_sending_again_after_a_failure_keeps_the_message_id(mailbox, alice, smtp_server):
    smtp_server.refuse_with = "554 5.7.1 Message rejected by policy"
    outbox = approve(mailbox, alice)
    send_outbox(outbox.pk)
    smtp_server.refuse_with = None
    assert outbox.send_again(alice)
    assert not outbox.send_again(alice)  # a second click finds nothing to resend
    assert send_outbox(outbox.pk) == "sent"
    assert send_outbox(outbox.pk).startswith("skipped")
    [(_, sent)] = smtp_server.received
    assert sent["Message-ID"] == outbox.message_id


def test_a_send_left_running_becomes_uncertain_not_resent(mailbox, alice, smtp_server):
    outbox = approve(mailbox, alice)
    assert outbox.claim()  # a worker took it, then nothing more was heard of it
    Outbox.objects.filter(pk=outbox.pk).update(sending_since=timezone.now() - timedelta(minutes=30))
    assert sweep_outbox() == "1 uncertain, 0 queued"
    assert state(outbox) == (Outbox.UNCERTAIN, Draft.SEND_UNCERTAIN)
    assert smtp_server.received == []


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_after_the_server_took_the_message_sends_nothing_more(
    mailbox, alice, smtp_server
):
    """A real worker process is killed while the server holds the message unanswered."""
    smtp_server.hold_after_data = True
    outbox = approve(mailbox, alice)
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_server.port),
    }
    manage = Path(django_settings.BASE_DIR) / "manage.py"
    code = f"from drafts.sending import send_outbox; send_outbox({outbox.pk})"
    worker = subprocess.Popen([sys.executable, str(manage), "shell", "-c", code], env=env)
    try:
        assert smtp_server.got_data.wait(60), "the worker never sent the message data"
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
    smtp_server.release.set()
    assert state(outbox) == (Outbox.SENDING, Draft.SENDING)
    Outbox.objects.filter(pk=outbox.pk).update(sending_since=timezone.now() - timedelta(minutes=30))
    sweep_outbox()
    assert send_outbox(outbox.pk).startswith("skipped")
    assert state(outbox) == (Outbox.UNCERTAIN, Draft.SEND_UNCERTAIN)
    assert len(smtp_server.received) == 1


def test_the_rate_limit_holds_back_the_rest(mailbox, alice, smtp_server):
    mailbox.send_limit_per_minute = 2
    mailbox.save()
    first = approve(mailbox, alice)
    others = [
        make_ready_draft(mailbox, name) for name in ("with_attachment.eml", "chinese_gb2312.eml")
    ]
    for draft in others:
        assert draft.approve(alice, "Dear customer,\n\nThanks.\n\nAcme")
    results = [send_outbox(o.pk) for o in Outbox.objects.order_by("id")]
    assert results[:2] == ["sent", "sent"] and results[2].startswith("skipped")
    assert len(smtp_server.received) == 2
    held = Outbox.objects.order_by("id").last()
    assert held.state == Outbox.QUEUED and held.next_attempt_at > timezone.now()
    assert first.pk != held.pk
    Outbox.objects.filter(mailbox=mailbox, state=Outbox.SENT).update(
        sent_at=timezone.now() - timedelta(minutes=2)
    )
    due_now(held)
    assert send_outbox(held.pk) == "sent"


def test_the_stats_show_each_delivery_state(mailbox, alice, carol, client, smtp_server):
    sent = approve(mailbox, alice)
    send_outbox(sent.pk)
    other = make_ready_draft(mailbox, "with_attachment.eml")
    other.approve(alice, "Dear Sam,\n\nFixed.\n\nAcme")
    smtp_server.drop_after_data = True
    send_outbox(Outbox.objects.get(draft=other).pk)
    client.force_login(carol)
    page = client.get(reverse("stats")).text
    assert '<li class="outbox-sent" data-state="sent"><strong>1</strong> Sent</li>' in page
    assert 'data-state="uncertain"><strong>1</strong>' in page
    assert 'data-state="failed"><strong>0</strong>' in page


def test_the_draft_page_shows_the_delivery(mailbox, alice, alice_client, smtp_server):
    outbox = approve(mailbox, alice)
    send_outbox(outbox.pk)
    page = alice_client.get(reverse("draft", args=[outbox.draft_id])).text
    assert 'id="delivery"' in page and outbox.message_id.strip("<>") in page
    assert "250 OK: queued as 42" in page


def test_the_outbox_is_swept_every_minute_after_migrate(db):
    from django.core.management.sql import emit_post_migrate_signal
    from django_q.models import Schedule

    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")
    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")
    schedule = Schedule.objects.get(func="drafts.sending.sweep_outbox")
    assert (schedule.minutes, schedule.repeats) == (1, -1)
    assert schedule.cluster == "replyhub-io"  # retries never wait behind the drafts


def test_the_sweeps_move_queues_when_the_io_worker_is_switched_off(db, settings):
    # REPLYHUB_IO_WORKERS=0 and migrate again: one schedule each, on the model workers'
    # queue (a schedule left on a queue nobody serves would never run).
    from django.core.management.sql import emit_post_migrate_signal
    from django_q.models import Schedule

    settings.REPLYHUB_IO_QUEUE = None
    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")
    sweeps = Schedule.objects.filter(
        func__in=["drafts.sending.sweep_outbox", "drafts.health.record_heartbeat"]
    )
    assert sorted((s.func, s.cluster) for s in sweeps) == [
        ("drafts.health.record_heartbeat", None), ("drafts.sending.sweep_outbox", None),
    ]  # fmt: skip
    settings.REPLYHUB_IO_QUEUE = "replyhub-io"
    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")
    assert Schedule.objects.get(func="drafts.sending.sweep_outbox").cluster == "replyhub-io"


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_it_sends_over_tls_with_authentication(mailbox, alice, settings, tmp_path, mode):
    """STARTTLS (port 587) or implicit TLS (465), logging in; the certificate is checked."""
    import ssl

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    from tests.conftest import SMTPRecorder
    from tests.dovecot import self_signed_certificate

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    self_signed_certificate(cert, key)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
        expected = LoginPassword(b"replyhub", b"s3cret-smtp")
        return AuthResult(success=auth_data == expected)

    recorder, port = SMTPRecorder(), free_port()
    # aiosmtpd offers AUTH only after STARTTLS; on implicit TLS it must not wait for it.
    options = {"authenticator": authenticator, "auth_require_tls": mode == "starttls"}
    if mode == "ssl":
        controller = Controller(
            recorder, hostname="127.0.0.1", port=port, ssl_context=context, **options
        )
    else:
        controller = Controller(
            recorder,
            hostname="127.0.0.1",
            port=port,
            tls_context=context,
            require_starttls=True,
            **options,
        )
    controller.start()
    try:
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
        settings.EMAIL_USE_TLS, settings.EMAIL_USE_SSL = mode == "starttls", mode == "ssl"
        settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = "replyhub", "s3cret-smtp"
        outbox = approve(mailbox, alice)
        assert send_outbox(outbox.pk).startswith("retry")  # a certificate we do not trust
        assert "CERTIFICATE_VERIFY_FAILED" in Outbox.objects.get().last_error
        settings.SMTP_CA_FILE = str(cert)
        due_now(outbox)
        assert send_outbox(outbox.pk) == "sent"
        assert len(recorder.received) == 1
    finally:
        controller.stop()


def test_a_mailbox_can_send_an_html_version_beside_the_text(mailbox, alice, smtp_server):
    mailbox.html_replies = True
    mailbox.save()
    outbox = approve(mailbox, alice, "Dear Olivia,\n\n<b>99</b> & more\nper seat.\n\nAcme")
    assert send_outbox(outbox.pk) == "sent"
    [(_, sent)] = smtp_server.received
    assert sent.get_content_type() == "multipart/alternative"
    text = sent.get_body(("plain",)).get_content()
    html = sent.get_body(("html",)).get_content()
    assert "<b>99</b> & more" in text
    assert "<p>&lt;b&gt;99&lt;/b&gt; &amp; more<br>per seat.</p>" in html
    assert "<b>" not in html


def test_replies_are_plain_text_by_default(mailbox, alice, smtp_server):
    send_outbox(approve(mailbox, alice).pk)
    [(_, sent)] = smtp_server.received
    assert sent.get_content_type() == "text/plain"


def test_a_reply_whose_task_was_lost_is_queued_again_by_the_sweep(mailbox, alice, smtp_server):
    outbox = approve(mailbox, alice)
    assert sweep_outbox() == "0 uncertain, 0 queued"  # its own task is still to run
    Outbox.objects.filter(pk=outbox.pk).update(
        next_attempt_at=timezone.now() - timedelta(minutes=2)
    )
    assert sweep_outbox() == "0 uncertain, 1 queued"


def test_a_send_task_queued_before_the_outbox_existed_still_sends_once(mailbox, alice, smtp_server):
    draft = make_ready_draft(mailbox)
    Draft.objects.filter(pk=draft.pk).update(status=Draft.APPROVED)  # approved by an old version
    assert send_draft(draft.pk) == "sent"
    assert send_draft(draft.pk).startswith("skipped")
    assert Outbox.objects.get(draft=draft).state == Outbox.SENT
    assert len(smtp_server.received) == 1

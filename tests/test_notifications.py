"""Chat notifications, delivered to a real local HTTP server that plays DingTalk, WeCom or a
webhook receiver: digests of new drafts, send failures after a real SMTP refusal, the
queue threshold, signatures recomputed here from the secret, retries, timeouts, and a dead
chat server that never holds up ingestion, approval or sending.

The delivery task runs where a worker would run it: tests call it for the notifications
that are due (`deliver_pending`), and two tests take the tasks off the real broker.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management.sql import emit_post_migrate_signal
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import Schedule
from django_q.signing import SignedPackage

from drafts import sealing
from drafts.ingest import ingest_message
from drafts.models import Draft, Mailbox, Outbox, StaffProfile
from drafts.notify import (
    Notification,
    NotificationChannel,
    deliver_notification,
    digest,
    due_alert,
    sweep_notifications,
)
from drafts.sending import send_outbox
from tests.conftest import all_at_once, free_port, make_ready_draft

pytestmark = pytest.mark.django_db

SECRET = "SECb1f4e2d9c0a7653e8f9d1c2b3a4f5e6d7c8b9a0f1e2d3c4b5a6f7e8d9c0b1a2"
BASE_URL = "https://replyhub.example.com"


@dataclass
class Received:
    """One request as the chat server got it."""

    path: str
    query: dict[str, list[str]]
    raw_query: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)


class ChatServer:
    """A real HTTP server on a free port. ``mode``: "ok" (HTTP 200, errcode 0), "500",
    "errcode" (HTTP 200 with ``errcode``/``errmsg``), "html" (HTTP 200, not JSON), or
    "hang" (no answer until the test ends)."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.mode = "ok"
        self.errcode, self.errmsg = 310000, "sign not match"
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                parts = urllib.parse.urlsplit(self.path)
                server.requests.append(
                    Received(
                        parts.path,
                        urllib.parse.parse_qs(parts.query),
                        parts.query,
                        {k.lower(): v for k, v in self.headers.items()},
                        body,
                    )
                )
                if server.mode == "hang":
                    server.release.wait(30)
                if server.mode == "500":
                    self._answer(500, b"internal error", "text/plain")
                elif server.mode == "errcode":
                    answer = {"errcode": server.errcode, "errmsg": server.errmsg}
                    self._answer(200, json.dumps(answer).encode())
                elif server.mode == "html":
                    self._answer(200, b"<html>proxy login</html>", "text/html")
                else:
                    self._answer(200, b'{"errcode":0,"errmsg":"ok"}')

            def _answer(self, status: int, body: bytes, kind: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def chat() -> Iterator[ChatServer]:
    server = ChatServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.httpd.shutdown()
        server.httpd.server_close()


@pytest.fixture(autouse=True)
def _base_url(settings) -> None:
    settings.REPLYHUB_BASE_URL = BASE_URL + "/"


def make_channel(mailbox: Mailbox, chat: ChatServer, kind: str = "dingtalk", **fields):
    urls = {
        "dingtalk": "/robot/send?access_token=tok-123",
        "wecom": "/cgi-bin/webhook/send?key=693a91f6-7xxx",
        "webhook": "/hooks/replyhub",
    }
    values = {
        "name": f"{kind} group",
        "kind": kind,
        "url": chat.url(urls[kind]),
        "secret": "" if kind == "wecom" else SECRET,
        "language": "en",
    }
    channel = NotificationChannel(mailbox=mailbox, **(values | fields))
    channel.full_clean()
    channel.save()
    return channel


def ready_draft(mailbox: Mailbox, intent: str, subject: str = "A question") -> Draft:
    """A new customer email whose draft the model has just finished."""
    tag = uuid.uuid4().hex[:12]
    raw = (
        f"From: Customer {tag} <c-{tag}@example.com>\r\nTo: {mailbox.address}\r\n"
        f"Subject: {subject}\r\nMessage-ID: <{tag}@example.com>\r\n"
        f"Date: Tue, 10 Nov 2026 09:15:00 +0000\r\n\r\nHello, about {tag}.\r\n"
    ).encode()
    message, _ = ingest_message(mailbox, raw)
    Draft.objects.filter(message=message).update(
        status=Draft.READY, intent=intent, ready_at=timezone.now(), reply_text="Dear customer,"
    )
    return Draft.objects.get(message=message)


def deliver_pending() -> list[str]:
    """What the worker does with the delivery tasks of the notifications that are due."""
    due = Notification.objects.filter(
        state=Notification.PENDING, next_attempt_at__lte=timezone.now()
    ).order_by("id")
    return [deliver_notification(pk) for pk in due.values_list("pk", flat=True)]


def due_now(notification: Notification) -> None:
    Notification.objects.filter(pk=notification.pk).update(next_attempt_at=timezone.now())


def dingtalk_sign(timestamp: str, secret: str = SECRET) -> str:
    """DingTalk's 加签, computed here independently: base64 of HMAC-SHA256 keyed by the
    secret over "timestamp\\nsecret"."""
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256)
    return base64.b64encode(digest.digest()).decode()


def approve_and_send(mailbox: Mailbox, user: User) -> Outbox:
    draft = make_ready_draft(mailbox)
    assert draft.approve(user, "Dear Olivia,\n\nThe price is 99 per seat.\n\nAcme")
    outbox = Outbox.objects.get(draft=draft)
    send_outbox(outbox.pk)
    outbox.refresh_from_db()
    return outbox


# -- digests ------------------------------------------------------------------------------


def test_a_dingtalk_robot_gets_one_signed_digest_with_the_counts_per_intent(mailbox, chat):
    channel = make_channel(mailbox, chat)
    for intent in ("complaint", "inquiry", "complaint", "technical_support", "demo_booking"):
        ready_draft(mailbox, intent)
    sweep_notifications()
    assert deliver_pending() == ["sent"]
    [request] = chat.requests
    assert request.path == "/robot/send" and request.query["access_token"] == ["tok-123"]
    [timestamp] = request.query["timestamp"]
    assert abs(int(timestamp) - time.time() * 1000) < 60_000  # milliseconds, now
    assert request.query["sign"] == [dingtalk_sign(timestamp)]
    assert f"sign={urllib.parse.quote_plus(dingtalk_sign(timestamp))}" in request.raw_query
    body = request.json
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"] == "ReplyHub: 5 new drafts in support@acme.example"
    text = body["markdown"]["text"]
    assert "2 complaints, 1 inquiry, 1 technical support request, 1 demo booking." in text
    assert f"[Open the review queue]({BASE_URL}/?mailbox={mailbox.pk})" in text
    notification = channel.notifications.get()
    assert notification.state == Notification.SENT and notification.attempts == 1
    assert notification.payload["total"] == 5 and len(notification.payload["draft_ids"]) == 5


def test_nothing_is_sent_when_no_draft_became_ready(mailbox, chat):
    make_channel(mailbox, chat)
    assert (
        sweep_notifications() == "0 digests, 0 reply-target alerts, 0 queue alerts, 0 queued again"
    )
    assert not Notification.objects.exists() and chat.requests == []


def test_the_same_drafts_are_not_announced_twice(mailbox, chat):
    channel = make_channel(mailbox, chat)
    ready_draft(mailbox, "inquiry")
    sweep_notifications()
    sweep_notifications()
    assert channel.notifications.count() == 1
    ready_draft(mailbox, "complaint")
    sweep_notifications()
    assert deliver_pending() == ["sent", "sent"]
    latest = channel.notifications.order_by("id").last()
    assert latest.payload["total"] == 1 and latest.payload["counts"] == {"complaint": 1}


def test_a_draft_that_committed_after_the_last_digest_is_still_announced(mailbox, chat):
    """Its ready_at is before the digest ran, but the digest could not see its row yet."""
    channel = make_channel(mailbox, chat)
    an_hour_ago = timezone.now() - timedelta(hours=1)
    NotificationChannel.objects.filter(pk=channel.pk).update(
        digest_from=an_hour_ago, digest_until=an_hour_ago
    )
    first = ready_draft(mailbox, "inquiry")
    sweep_notifications()
    late = ready_draft(mailbox, "complaint")
    channel.refresh_from_db()
    Draft.objects.filter(pk=late.pk).update(ready_at=channel.digest_until - timedelta(seconds=2))
    sweep_notifications()
    latest = channel.notifications.order_by("id").last()
    assert latest.payload["draft_ids"] == [late.pk] and first.pk not in latest.payload["draft_ids"]


def test_drafts_from_before_the_channel_existed_are_not_announced(mailbox, chat):
    ready_draft(mailbox, "inquiry")
    channel = make_channel(mailbox, chat)
    sweep_notifications()
    assert not channel.notifications.exists()


def test_two_digests_at_once_send_one_message(mailbox, chat):
    channel = make_channel(mailbox, chat)
    stale = NotificationChannel.objects.get(pk=channel.pk)  # read by a second sweep
    ready_draft(mailbox, "inquiry")
    assert digest(channel) is not None
    assert digest(stale) is None  # the watermark moved under it: the conditional UPDATE lost
    assert Notification.objects.count() == 1


def test_drafts_already_decided_are_not_counted(mailbox, chat, alice):
    make_channel(mailbox, chat)
    ready_draft(mailbox, "inquiry")
    ready_draft(mailbox, "complaint").reject(alice, "no_reply_needed")
    sweep_notifications()
    assert Notification.objects.get().payload["counts"] == {"inquiry": 1}


def test_a_wecom_robot_gets_the_digest_in_chinese(mailbox, chat):
    make_channel(mailbox, chat, "wecom", language="zh-hans")
    for intent in ("complaint", "complaint", "partnership"):
        ready_draft(mailbox, intent)
    sweep_notifications()
    assert deliver_pending() == ["sent"]
    [request] = chat.requests
    assert request.path == "/cgi-bin/webhook/send" and request.query["key"] == ["693a91f6-7xxx"]
    assert "timestamp" not in request.query and "sign" not in request.query
    body = request.json
    assert body["msgtype"] == "markdown" and set(body["markdown"]) == {"content"}
    content = body["markdown"]["content"]
    assert "ReplyHub：support@acme.example 有 3 封新草稿待审核" in content
    assert "投诉 2 封、合作意向 1 封。" in content
    assert f"[打开审核队列]({BASE_URL}/?mailbox={mailbox.pk})" in content


def test_a_webhook_gets_the_payload_signed_over_the_raw_body(mailbox, chat):
    make_channel(mailbox, chat, "webhook")
    ready_draft(mailbox, "inquiry")
    ready_draft(mailbox, "other")
    sweep_notifications()
    assert deliver_pending() == ["sent"]
    [request] = chat.requests
    expected = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-replyhub-signature"] == f"sha256={expected}"
    assert request.headers["content-type"] == "application/json; charset=utf-8"
    assert request.headers["x-replyhub-event"] == "drafts_ready"
    assert abs(int(request.headers["x-replyhub-timestamp"]) - time.time()) < 60
    body = request.json
    assert body["event"] == "drafts_ready" and body["total"] == 2
    assert body["counts"] == {"inquiry": 1, "other": 1}
    assert body["mailbox"] == {"id": mailbox.pk, "name": "default", "address": mailbox.address}
    assert body["url"] == f"{BASE_URL}/?mailbox={mailbox.pk}"
    assert abs((datetime.fromisoformat(body["sent_at"]) - timezone.now()).total_seconds()) < 60


def test_a_channel_of_another_mailbox_is_not_notified(mailbox, chat):
    sales = Mailbox.objects.create(name="sales", address="sales@acme.example")
    ours = make_channel(mailbox, chat)
    theirs = make_channel(sales, chat, name="sales group")
    ready_draft(mailbox, "inquiry")
    sweep_notifications()
    assert ours.notifications.count() == 1 and not theirs.notifications.exists()


def test_a_disabled_channel_or_event_is_not_notified(mailbox, chat, alice, smtp_server):
    off = make_channel(mailbox, chat, enabled=False)
    no_digest = make_channel(mailbox, chat, name="failures only", on_drafts_ready=False)
    no_failures = make_channel(mailbox, chat, name="digests only", on_send_failed=False)
    ready_draft(mailbox, "inquiry")
    sweep_notifications()
    smtp_server.refuse_with = "550 5.1.1 No such user here"
    approve_and_send(mailbox, alice)
    assert not off.notifications.exists()
    assert [n.event for n in no_digest.notifications.all()] == ["send_failed"]
    assert [n.event for n in no_failures.notifications.all()] == ["drafts_ready"]


def test_turning_a_channel_on_announces_only_what_is_new_from_then_on(mailbox, chat):
    channel = make_channel(mailbox, chat, enabled=False)
    ready_draft(mailbox, "inquiry")
    sweep_notifications()
    NotificationChannel.objects.filter(pk=channel.pk).update(enabled=True)
    sweep_notifications()
    assert not channel.notifications.exists()
    ready_draft(mailbox, "complaint")
    sweep_notifications()
    assert channel.notifications.get().payload["counts"] == {"complaint": 1}


# -- send failures ------------------------------------------------------------------------


def test_a_reply_the_smtp_server_refused_is_announced_with_its_words(
    mailbox, chat, alice, smtp_server
):
    make_channel(mailbox, chat)
    smtp_server.refuse_with = "550 5.1.1 No such user here"
    outbox = approve_and_send(mailbox, alice)
    assert outbox.state == Outbox.FAILED
    assert deliver_pending() == ["sent"]
    [request] = chat.requests
    markdown = request.json["markdown"]
    assert markdown["title"] == "ReplyHub: a reply could not be sent"
    text = markdown["text"]
    assert "**Subject:** Pricing for Acme CRM, 25 seats" in text
    assert "**To:** purchasing@northwind.example" in text
    assert "550 5.1.1 No such user here" in text
    assert f"[Open the draft]({BASE_URL}/drafts/{outbox.draft_id}/)" in text
    assert request.query["sign"] == [dingtalk_sign(request.query["timestamp"][0])]


def test_an_uncertain_delivery_is_announced_in_chinese(mailbox, chat, alice, smtp_server):
    make_channel(mailbox, chat, language="zh-hans")
    smtp_server.drop_after_data = True
    outbox = approve_and_send(mailbox, alice)
    assert outbox.state == Outbox.UNCERTAIN
    deliver_pending()
    text = chat.requests[0].json["markdown"]["text"]
    assert "#### ReplyHub：回复投递结果不确定" in text
    assert "**收件人：** purchasing@northwind.example" in text and "客户可能已收到" in text


def test_a_temporary_smtp_failure_is_not_announced(mailbox, chat, alice, smtp_server):
    make_channel(mailbox, chat)
    smtp_server.refuse_rcpt = "451 4.3.0 Try again later"
    assert approve_and_send(mailbox, alice).state == Outbox.RETRY
    assert not Notification.objects.exists()


def test_the_webhook_gets_the_failed_draft_as_data(mailbox, chat, alice, smtp_server):
    make_channel(mailbox, chat, "webhook")
    smtp_server.refuse_with = "554 5.7.1 Message rejected by policy"
    outbox = approve_and_send(mailbox, alice)
    deliver_pending()
    draft = chat.requests[0].json["draft"]
    assert draft["id"] == outbox.draft_id and draft["state"] == "failed"
    assert draft["recipient"] == "purchasing@northwind.example"
    assert draft["error"] == "end of DATA: 554 5.7.1 Message rejected by policy"
    assert draft["url"] == f"{BASE_URL}/drafts/{outbox.draft_id}/"


def test_a_customers_subject_cannot_put_links_or_tags_into_the_chat(
    mailbox, chat, alice, smtp_server
):
    make_channel(mailbox, chat)
    draft = make_ready_draft(mailbox)
    draft.message.subject = "Refund [click here](https://evil.example) <font>x</font>"
    draft.message.save()
    assert draft.approve(alice, "Dear Olivia,\n\nNo.\n\nAcme")
    smtp_server.refuse_with = "550 5.1.1 No such user here"
    assert send_outbox(Outbox.objects.get(draft=draft).pk).startswith("failed")
    deliver_pending()
    text = chat.requests[0].json["markdown"]["text"]
    assert "](https://evil.example)" not in text and "<font>" not in text
    assert "Refund ［click here］(https://evil.example) ‹font›x‹/font›" in text


# -- the queue threshold ------------------------------------------------------------------


def test_the_queue_threshold_fires_once_and_rearms_after_the_queue_went_under(mailbox, chat, alice):
    channel = make_channel(
        mailbox, chat, on_drafts_ready=False, on_queue_over=True, queue_threshold=3
    )
    drafts = [ready_draft(mailbox, "inquiry") for _ in range(3)]
    sweep_notifications()
    assert not channel.notifications.exists()  # 3 is not over 3
    drafts.append(ready_draft(mailbox, "inquiry"))
    sweep_notifications()
    sweep_notifications()
    ready_draft(mailbox, "inquiry")
    sweep_notifications()
    assert channel.notifications.count() == 1  # once, not every minute
    assert deliver_pending() == ["sent"]
    text = chat.requests[0].json["markdown"]["text"]
    assert "**support@acme.example** has 4 drafts awaiting review (threshold 3)." in text
    for draft in drafts[:3]:
        assert draft.reject(alice, "no_reply_needed")
    sweep_notifications()  # 2 waiting: under the threshold, re-armed, nothing sent
    assert channel.notifications.count() == 1
    for _ in range(2):
        ready_draft(mailbox, "inquiry")
    sweep_notifications()
    assert channel.notifications.count() == 2
    assert channel.notifications.order_by("id").last().payload["waiting"] == 4


# -- reply targets ------------------------------------------------------------------------


def due_in(mailbox: Mailbox, minutes: float, subject: str = "A question") -> Draft:
    """An unanswered email whose reply target is ``minutes`` from now."""
    draft = ready_draft(mailbox, "inquiry", subject)
    Draft.objects.filter(pk=draft.pk).update(due_at=timezone.now() + timedelta(minutes=minutes))
    return Draft.objects.get(pk=draft.pk)


def test_emails_that_become_overdue_are_announced_once(mailbox, chat, alice):
    channel = make_channel(mailbox, chat, on_drafts_ready=False)
    soon = due_in(mailbox, 10, "Invoice [wrong] <b>now</b>")
    due_in(mailbox, 120, "Later")
    answered = due_in(mailbox, 5, "Answered in time")
    assert answered.reject(alice, "no_reply_needed")
    in_15 = timezone.now() + timedelta(minutes=15)
    assert due_alert(channel, in_15) is not None
    assert due_alert(channel, in_15 + timedelta(minutes=1)) is None  # not again
    assert deliver_pending() == ["sent"]
    text = chat.requests[0].json["markdown"]["text"]
    due = f"{timezone.localtime(soon.due_at):%m-%d %H:%M}"
    assert text.startswith("#### ReplyHub: 1 email in support@acme.example past their reply target")
    assert f"- [Invoice ［wrong］ ‹b›now‹/b›]({BASE_URL}/drafts/{soon.pk}/) · {due}" in text
    assert (
        f"[Open the queue, due soonest first]({BASE_URL}/?mailbox={mailbox.pk}&order=due)" in text
    )
    [notification] = channel.notifications.all()
    assert notification.payload["draft_ids"] == [soon.pk]


def test_a_warning_time_announces_emails_before_they_are_late_in_chinese(mailbox, chat):
    channel = make_channel(
        mailbox, chat, "wecom", on_drafts_ready=False, due_warning_minutes=30, language="zh-hans"
    )
    # They arrive already inside the warning time (a short target): announced at once.
    drafts = [due_in(mailbox, 20, f"问题 {n}") for n in range(7)]
    due_in(mailbox, 45, "还早")
    sweep_notifications()
    sweep_notifications()
    assert deliver_pending() == ["sent"]
    text = chat.requests[0].json["markdown"]["content"]
    assert text.startswith("#### ReplyHub：support@acme.example 有 7 封邮件将在 30 分钟内到期")
    assert text.count("\n\n- [问题 ") == 5
    assert "另有 2 封。" in text
    assert channel.notifications.get().payload["draft_ids"] == [d.pk for d in drafts]


def test_a_channel_with_the_alert_off_does_not_catch_up_when_turned_on(mailbox, chat):
    channel = make_channel(mailbox, chat, on_drafts_ready=False, on_drafts_due=False)
    due_in(mailbox, -1)
    sweep_notifications()
    NotificationChannel.objects.filter(pk=channel.pk).update(on_drafts_due=True)
    sweep_notifications()
    assert not channel.notifications.exists()
    late = due_in(mailbox, 0.01)
    time.sleep(1)
    sweep_notifications()
    assert channel.notifications.get().payload["draft_ids"] == [late.pk]


# -- delivery: retries, failures, timeouts ------------------------------------------------


def test_a_500_answer_is_retried_with_backoff_then_failed(mailbox, chat):
    make_channel(mailbox, chat, "webhook")
    chat.mode = "500"
    ready_draft(mailbox, "inquiry")
    sweep_notifications()
    notification = Notification.objects.get()
    waits = []
    for _ in range(5):
        started = timezone.now()
        outcome = deliver_notification(notification.pk)
        notification.refresh_from_db()
        waits.append(round((notification.next_attempt_at - started).total_seconds() / 60))
        due_now(notification)
    assert outcome.startswith("failed:") and "gave up after 5 attempts" in outcome
    assert waits[:4] == [1, 5, 15, 60]
    assert notification.state == Notification.FAILED and notification.attempts == 5
    assert "answered HTTP 500: internal error" in notification.last_error
    assert [entry["attempt"] for entry in notification.attempt_log] == [1, 2, 3, 4, 5]
    assert len(chat.requests) == 5
    assert deliver_notification(notification.pk).startswith("skipped")
    assert sweep_notifications().endswith("0 queued again")


def test_a_retry_that_succeeds_is_sent_once(mailbox, chat):
    make_channel(mailbox, chat)
    chat.mode = "500"
    ready_draft(mailbox, "inquiry")
    sweep_notifications()
    assert deliver_pending()[0].startswith("retry in 1 min")
    assert deliver_pending() == []  # not due yet
    chat.mode = "ok"
    due_now(Notification.objects.get())
    assert deliver_pending() == ["sent"]
    notification = Notification.objects.get()
    assert notification.state == Notification.SENT and notification.attempts == 2
    assert notification.last_error == "" and len(chat.requests) == 2


@pytest.mark.parametrize(
    ("kind", "mode", "errcode", "expected"),
    [
        ("dingtalk", "errcode", 310000, "DingTalk refused: errcode 310000: sign not match"),
        ("dingtalk", "errcode", 130101, "DingTalk refused: errcode 130101: send too fast"),
        ("wecom", "errcode", 93000, "WeCom refused: errcode 93000: invalid webhook url"),
        ("dingtalk", "html", None, "not a DingTalk answer (HTTP 200): <html>proxy login</html>"),
    ],
)
def test_an_http_200_that_is_not_errcode_0_is_a_failure(
    mailbox, chat, kind, mode, errcode, expected
):
    make_channel(mailbox, chat, kind)
    chat.mode, chat.errcode = mode, errcode
    chat.errmsg = {310000: "sign not match", 130101: "send too fast"}.get(
        errcode, "invalid webhook url"
    )
    ready_draft(mailbox, "inquiry")
    sweep_notifications()
    assert deliver_pending()[0].startswith("retry in 1 min")
    notification = Notification.objects.get()
    assert notification.state == Notification.PENDING and notification.last_error == expected


def test_a_chat_server_that_never_answers_times_out(mailbox, chat, settings):
    settings.REPLYHUB_NOTIFY_TIMEOUT = 1
    make_channel(mailbox, chat)
    chat.mode = "hang"
    ready_draft(mailbox, "inquiry")
    sweep_notifications()
    started = time.monotonic()
    [outcome] = deliver_pending()
    assert time.monotonic() - started < 5
    assert outcome.startswith("retry in 1 min") and "sent no answer within 1 s" in outcome
    assert len(chat.requests) == 1


def test_a_notification_left_by_a_dead_worker_is_tried_again(mailbox, chat):
    make_channel(mailbox, chat)
    ready_draft(mailbox, "inquiry")
    sweep_notifications()
    notification = Notification.objects.get()
    assert notification.claim()  # a worker took it, then was killed
    assert deliver_notification(notification.pk).startswith("skipped")  # its lease runs
    Notification.objects.filter(pk=notification.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )
    assert (
        sweep_notifications() == "0 digests, 0 reply-target alerts, 0 queue alerts, 1 queued again"
    )
    assert deliver_pending() == ["sent"]


def test_a_channel_disabled_before_delivery_gets_nothing(mailbox, chat):
    channel = make_channel(mailbox, chat)
    ready_draft(mailbox, "inquiry")
    sweep_notifications()
    NotificationChannel.objects.filter(pk=channel.pk).update(enabled=False)
    assert deliver_pending() == ["failed: the channel is disabled"]
    assert Notification.objects.get().state == Notification.FAILED and chat.requests == []


def test_a_message_that_cannot_be_composed_fails_its_attempt_instead_of_the_worker(mailbox, chat):
    channel = make_channel(mailbox, chat)
    broken = Notification.objects.create(channel=channel, event="drafts_ready", payload={})
    assert deliver_notification(broken.pk) == "retry in 1 min: KeyError: 'mailbox'"
    broken.refresh_from_db()
    assert broken.state == Notification.PENDING and broken.attempts == 1
    assert chat.requests == []


@pytest.mark.django_db(transaction=True)
def test_two_workers_at_once_deliver_once(mailbox, chat):
    make_channel(mailbox, chat)
    ready_draft(mailbox, "inquiry")
    sweep_notifications()
    pk = Notification.objects.get().pk
    results = all_at_once(*[lambda: deliver_notification(pk)] * 4)
    assert len(results) == 4 and results.count("sent") == 1
    assert len(chat.requests) == 1


# -- a dead chat server holds up nothing --------------------------------------------------


@pytest.mark.parametrize("trouble", ["hangs", "is down"])
def test_ingestion_approval_and_sending_go_on_while_the_chat_server_is_dead(
    mailbox, chat, alice, smtp_server, settings, trouble
):
    if trouble == "hangs":
        chat.mode = "hang"
        channel = make_channel(mailbox, chat)
    else:
        dead = f"http://127.0.0.1:{free_port()}/robot/send?access_token=t"
        channel = make_channel(mailbox, chat, url=dead)
    smtp_server.refuse_with = "550 5.1.1 No such user here"
    started = time.monotonic()
    first = ready_draft(mailbox, "inquiry")  # ingestion
    assert first.approve(alice, "Dear customer,\n\nDone.\n\nAcme")
    outbox = Outbox.objects.get(draft=first)
    assert send_outbox(outbox.pk).startswith("failed")
    ready_draft(mailbox, "complaint")
    sweep_notifications()
    # The chat server's default 10 s timeout never came into it: nothing waited for it.
    assert time.monotonic() - started < 5
    assert chat.requests == []
    assert Draft.objects.get(pk=first.pk).status == Draft.SEND_FAILED
    # Both messages wait for the worker, untried: nothing above spoke to a chat server.
    assert [n.attempts for n in channel.notifications.all()] == [0, 0]
    settings.REPLYHUB_NOTIFY_TIMEOUT = 1
    outcomes = deliver_pending()
    assert len(outcomes) == 2 and all(o.startswith("retry in 1 min") for o in outcomes)
    assert channel.notifications.filter(state=Notification.PENDING, attempts=1).count() == 2


# -- the queue of tasks -------------------------------------------------------------------


@pytest.fixture
def broker(settings):
    """The I/O workers' queue (notifications never wait for the model) on the configured
    django-q2 broker (the database, or Redis), emptied around the test."""
    broker = get_broker(settings.REPLYHUB_IO_QUEUE)
    broker.purge_queue()
    yield broker
    broker.purge_queue()


def queued_tasks(broker) -> list[tuple[str, tuple]]:
    """Take every task off the broker, as a worker would: (function, arguments)."""
    tasks = []
    while batch := broker.dequeue():
        for task_id, payload in batch:
            task = SignedPackage.loads(payload)
            tasks.append((task["func"], tuple(task["args"])))
            broker.acknowledge(task_id)
    return tasks


def test_failures_and_digests_reach_the_worker_as_queued_tasks(
    mailbox, chat, alice, smtp_server, broker, django_capture_on_commit_callbacks
):
    make_channel(mailbox, chat)
    smtp_server.refuse_with = "550 5.1.1 No such user here"
    with django_capture_on_commit_callbacks(execute=True):  # Redis is pushed on commit
        approve_and_send(mailbox, alice)
        ready_draft(mailbox, "inquiry")
        sweep_notifications()
    ours = [args for func, args in queued_tasks(broker) if func.startswith("drafts.notify")]
    ids = list(Notification.objects.order_by("id").values_list("pk", flat=True))
    assert sorted(ours) == [(pk,) for pk in ids] and len(ids) == 2
    assert chat.requests == []  # queued, not sent inline
    for (pk,) in ours:
        assert deliver_notification(pk) == "sent"
    assert len(chat.requests) == 2


def test_the_sweep_queues_retries_that_are_due(
    mailbox, chat, broker, django_capture_on_commit_callbacks
):
    make_channel(mailbox, chat)
    chat.mode = "500"
    ready_draft(mailbox, "inquiry")
    sweep_notifications()
    deliver_pending()
    notification = Notification.objects.get()
    queued_tasks(broker)
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep_notifications().endswith("0 queued again")  # not due for a minute
    due_now(notification)
    with django_capture_on_commit_callbacks(execute=True):
        assert sweep_notifications().endswith("1 queued again")
    assert queued_tasks(broker) == [("drafts.notify.deliver_notification", (notification.pk,))]


def test_the_notifications_sweep_runs_every_minute_after_migrate(db):
    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")
    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")
    schedule = Schedule.objects.get(func="drafts.notify.sweep_notifications")
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == ("I", 1, -1)
    assert schedule.cluster == "replyhub-io"


# -- the admin ----------------------------------------------------------------------------


@pytest.fixture
def dana_client(client, db):
    """An admin by role, not a superuser."""
    user = User.objects.create_user("dana", password="dana-password-1")
    StaffProfile.objects.create(user=user, role=StaffProfile.ADMIN)
    client.force_login(user)
    return client


def test_an_admin_sets_up_a_channel_and_sends_a_test_message(dana_client, mailbox, chat):
    response = dana_client.post(
        reverse("admin:drafts_notificationchannel_add"),
        {
            "mailbox": mailbox.pk,
            "name": "客服群",
            "kind": "dingtalk",
            "url": chat.url("/robot/send?access_token=tok-123"),
            "secret": SECRET,
            "enabled": "on",
            "language": "zh-hans",
            "on_drafts_ready": "on",
            "on_send_failed": "on",
            "queue_threshold": 50,
            "on_drafts_due": "on",
            "due_warning_minutes": 30,
        },
    )
    assert response.status_code == 302, response.text
    channel = NotificationChannel.objects.get()
    assert channel.secret == SECRET and channel.language == "zh-hans"
    assert (channel.on_drafts_due, channel.due_warning_minutes) == (True, 30)
    page = dana_client.post(
        reverse("admin:drafts_notificationchannel_changelist"),
        {"action": "send_test_message", "_selected_action": [channel.pk]},
        follow=True,
    ).text
    assert "客服群 (DingTalk custom robot): sent" in page
    [request] = chat.requests
    assert request.json["markdown"]["title"] == "ReplyHub：测试消息"
    assert request.query["sign"] == [dingtalk_sign(request.query["timestamp"][0])]
    chat.mode = "errcode"
    page = dana_client.post(
        reverse("admin:drafts_notificationchannel_changelist"),
        {"action": "send_test_message", "_selected_action": [channel.pk]},
        follow=True,
    ).text
    assert "DingTalk refused: errcode 310000: sign not match" in page
    failed = Notification.objects.order_by("id").last()
    assert failed.state == Notification.FAILED  # a test is tried once, never later
    listing = dana_client.get(reverse("admin:drafts_notification_changelist")).text
    assert "sign not match" in listing  # the failed test stays visible


def test_an_admin_reads_notifications_but_cannot_change_them(dana_client, mailbox, chat):
    make_channel(mailbox, chat)
    ready_draft(mailbox, "inquiry")
    sweep_notifications()
    notification = Notification.objects.get()
    url = reverse("admin:drafts_notification_change", args=[notification.pk])
    assert dana_client.get(url).status_code == 200
    assert dana_client.post(url, {"state": "sent"}).status_code == 403
    assert dana_client.get(reverse("admin:drafts_notification_add")).status_code == 403


# -- sealed at rest ------------------------------------------------------------------------


def test_a_channels_url_and_secret_are_sealed_in_the_database(mailbox, chat):
    channel = make_channel(mailbox, chat)
    stored = NotificationChannel.objects.filter(pk=channel.pk).values_list("url", "secret")
    with connection.cursor() as cursor:
        cursor.execute("SELECT url, secret FROM drafts_notificationchannel")
        [raw] = cursor.fetchall()
    assert "tok-123" not in str(raw) and SECRET not in str(raw)
    assert sealing.unseal(raw[0]) == chat.url("/robot/send?access_token=tok-123")
    assert list(stored) == [(chat.url("/robot/send?access_token=tok-123"), SECRET)]


def test_after_a_key_change_with_a_fallback_the_robot_still_gets_signed_messages(
    mailbox, chat, settings
):
    make_channel(mailbox, chat)
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "a new key " * 6, [settings.SECRET_KEY]
    ready_draft(mailbox, "inquiry")
    sweep_notifications()
    assert deliver_pending() == ["sent"]
    [request] = chat.requests
    assert request.query["access_token"] == ["tok-123"]
    assert request.query["sign"] == [dingtalk_sign(request.query["timestamp"][0])]


def test_without_the_old_key_a_channel_says_what_to_enter_again(
    dana_client, mailbox, chat, settings
):
    channel = make_channel(mailbox, chat, "webhook")
    old_key = settings.SECRET_KEY
    settings.SECRET_KEY = "a new key " * 6
    ready_draft(mailbox, "inquiry")
    sweep_notifications()
    [outcome] = deliver_pending()
    assert outcome.startswith("retry in 1 min: The channel's URL and secret can no longer be read")
    assert "SECRET_KEY_FALLBACKS" in Notification.objects.get().last_error
    assert chat.requests == []
    dana_client.force_login(User.objects.get(username="dana"))  # sessions changed keys too
    page = dana_client.get(
        reverse("admin:drafts_notificationchannel_change", args=[channel.pk])
    ).text
    assert page.count("Can no longer be read: it was sealed with a SECRET_KEY") == 2
    # Saving the channel otherwise unchanged keeps what was sealed: the old key opens it again.
    channel = NotificationChannel.objects.get()
    channel.enabled = False
    channel.save()
    settings.SECRET_KEY_FALLBACKS = [old_key]
    assert NotificationChannel.objects.get().secret == SECRET


def test_reviewers_cannot_manage_channels(client, alice):
    client.force_login(alice)
    response = client.get(reverse("admin:drafts_notificationchannel_add"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        (
            {"kind": "dingtalk", "url": "https://oapi.dingtalk.com/robot/send"},
            "url",
            "A DingTalk robot URL contains ?access_token=…",
        ),
        (
            {
                "kind": "dingtalk",
                "url": "https://oapi.dingtalk.com/robot/send?access_token=a&sign=b",
            },
            "url",
            "Remove timestamp= and sign= from the URL",
        ),
        (
            {"kind": "wecom", "url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"},
            "url",
            "A WeCom robot URL contains ?key=…",
        ),
        (
            {
                "kind": "wecom",
                "url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k",
                "secret": "x",
            },
            "secret",
            "WeCom group robots do not sign messages",
        ),
        (
            {"kind": "webhook", "url": "https://hooks.example.com/replyhub", "secret": ""},
            "secret",
            "A webhook needs a secret",
        ),
        (
            {"kind": "webhook", "url": "ftp://hooks.example.com/replyhub"},
            "url",
            "Use an https:// (or http://) address.",
        ),
        (
            {
                "kind": "dingtalk",
                "url": "https://oapi.dingtalk.com/robot/send?access_token=a",
                "secret": "SEC1 2",
            },
            "secret",
            "The secret contains spaces or line breaks",
        ),
        (
            {
                "kind": "webhook",
                "url": "https://hooks.example.com/replyhub",
                "on_queue_over": True,
                "queue_threshold": 0,
            },
            "queue_threshold",
            "Give a threshold of at least 1",
        ),
    ],
)
def test_a_channel_that_could_not_deliver_is_refused_by_name(mailbox, fields, field, message):
    channel = NotificationChannel(mailbox=mailbox, name="team", **({"secret": SECRET} | fields))
    with pytest.raises(ValidationError) as refused:
        channel.full_clean()
    assert any(message in error for error in refused.value.message_dict[field])

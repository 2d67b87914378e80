"""API callbacks: a finished draft is POSTed, signed, to a real HTTP server (http.server in
a thread), retried with backoff after a failure, and given up in the end."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone

from drafts import sealing, tasks
from drafts.api.callbacks import ApiCallback, deliver_callback, sweep_callbacks
from drafts.api.tokens import ApiToken
from drafts.models import Draft
from tests.apiclient import Api, ScriptedModel, record_tasks
from tests.conftest import mail_bytes, make_ready_draft

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(monkeypatch, settings) -> list[tuple[str, tuple]]:
    return record_tasks(monkeypatch, settings)


class Receiver(BaseHTTPRequestHandler):
    """Records each POST; answers with the next of ``server.answers`` (then 200)."""

    def do_POST(self) -> None:  # the name http.server calls
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.headers, body))  # header names: any case
        status = self.server.answers.pop(0) if self.server.answers else 200
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[ThreadingHTTPServer]:
    """A real HTTP server on a free local port, in a thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.received, server.answers = [], []
    server.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/replyhub"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def submit_with_callback(alice: User, url: str) -> tuple[ApiToken, Draft]:
    token, secret = ApiToken.issue(alice, "crm")
    response = Api(secret).post(
        "/api/v1/messages",
        {
            "from": "Li Wei <li@x.example>",
            "subject": "Outage",
            "text": "Down again!",
            "callback_url": url,
        },
    )
    assert response.status_code == 201, response.content
    assert response.json()["callback"]["state"] == ApiCallback.PENDING
    return token, Draft.objects.get(pk=response.json()["draft"]["id"])


def deliver(queued: list[tuple[str, tuple]]) -> list[str]:
    """Run the queued callback deliveries, as a worker would, and forget every queued task."""
    results = [
        deliver_callback(*args) for func, args in queued if func.endswith(".deliver_callback")
    ]
    queued.clear()
    return results


def test_a_finished_draft_is_posted_signed_to_the_callback_and_retried_after_a_500(
    alice, mailbox, monkeypatch, receiver, queued
):
    monkeypatch.setattr(tasks, "configured_backend", lambda: ScriptedModel())
    token, draft = submit_with_callback(alice, receiver.url)
    receiver.answers = [500]
    assert deliver(queued) == []  # only the generation task: run here instead
    assert tasks.generate_draft(draft.pk) == "ready: 1"

    assert deliver(queued) == ["retry: HTTP 500 Internal Server Error"]
    callback = ApiCallback.objects.get(draft=draft)
    assert (callback.state, callback.attempts, callback.last_status) == ("retry", 1, 500)
    assert (
        timedelta(seconds=50) < callback.next_attempt_at - timezone.now() <= timedelta(seconds=60)
    )
    assert sweep_callbacks() == "0 revived, 0 queued"  # not due yet

    ApiCallback.objects.filter(pk=callback.pk).update(next_attempt_at=timezone.now())
    assert sweep_callbacks() == "0 revived, 1 queued"
    assert deliver(queued) == ["delivered"]
    callback.refresh_from_db()
    assert (callback.state, callback.attempts, callback.last_status) == ("delivered", 2, 200)

    assert len(receiver.received) == 2
    for headers, body in receiver.received:
        expected = hmac.new(token.signing_secret.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-ReplyHub-Signature"] == f"sha256={expected}"
        assert headers["X-ReplyHub-Event"] == "draft.ready"
        assert headers["X-ReplyHub-Delivery"] == str(callback.pk)
        assert headers["Content-Type"] == "application/json"
    sent = json.loads(receiver.received[-1][1])
    assert sent["event"] == "draft.ready"
    assert sent["draft"]["id"] == draft.pk
    assert sent["draft"]["intent"] == "complaint"
    assert sent["draft"]["url"] == f"http://testserver/api/v1/drafts/{draft.pk}"
    assert deliver_callback(callback.pk).startswith("skipped")  # never twice


def test_the_signing_secret_is_sealed_and_without_the_old_key_callbacks_fail_saying_why(
    alice, mailbox, monkeypatch, receiver, queued, settings
):
    monkeypatch.setattr(tasks, "configured_backend", lambda: ScriptedModel())
    token, draft = submit_with_callback(alice, receiver.url)
    with connection.cursor() as cursor:
        cursor.execute("SELECT signing_secret FROM drafts_apitoken")
        [(raw,)] = cursor.fetchall()
    assert token.signing_secret.startswith("whsec_") and token.signing_secret not in raw
    assert sealing.unseal(raw) == token.signing_secret
    settings.SECRET_KEY = "a new key " * 6
    assert tasks.generate_draft(draft.pk) == "ready: 1"
    assert deliver(queued) == ["failed: signing secret unreadable"]
    callback = ApiCallback.objects.get(draft=draft)
    assert callback.state == ApiCallback.FAILED
    assert callback.last_error.startswith("the token's signing secret can no longer be read")
    assert receiver.received == []  # never signed with an empty key


def test_a_failed_generation_is_called_back_too(alice, mailbox, monkeypatch, receiver, queued):
    def broken():
        raise OSError("model file missing")

    monkeypatch.setattr(tasks, "configured_backend", broken)
    _, draft = submit_with_callback(alice, receiver.url)
    assert deliver(queued) == []
    assert tasks.generate_draft(draft.pk) == "failed"
    assert deliver(queued) == ["delivered"]
    [(headers, body)] = receiver.received
    assert headers["X-ReplyHub-Event"] == "draft.failed"
    assert "model file missing" in json.loads(body)["draft"]["error"]


def test_a_callback_gives_up_after_the_last_attempt_and_a_revoked_token_gets_none(
    alice, mailbox, receiver, settings
):
    settings.REPLYHUB_API_CALLBACK_ATTEMPTS = 2
    receiver.answers = [503, 503]
    token, draft = submit_with_callback(alice, receiver.url)
    Draft.objects.filter(pk=draft.pk).update(status=Draft.READY, version=2)
    callback = ApiCallback.objects.get(draft=draft)
    assert deliver_callback(callback.pk).startswith("retry")
    ApiCallback.objects.filter(pk=callback.pk).update(next_attempt_at=timezone.now())
    assert deliver_callback(callback.pk).startswith("failed")
    callback.refresh_from_db()
    assert "gave up after 2 attempts" in callback.last_error

    other = ApiCallback.objects.create(
        draft=draft, token=token, url=receiver.url, base_url="http://x"
    )
    token.revoke()
    assert deliver_callback(other.pk) == "failed: token revoked"
    assert len(receiver.received) == 2


def test_a_callback_for_a_draft_finished_long_ago_is_queued_at_once(
    alice, mailbox, receiver, queued
):
    draft = make_ready_draft(mailbox)
    _, secret = ApiToken.issue(alice, "crm")
    queued.clear()
    response = Api(secret).post(
        f"/api/v1/messages?callback_url={receiver.url}",
        mail_bytes("inquiry_en.eml"),
        content_type="message/rfc822",
    )
    assert response.status_code == 200  # the same email: stored before
    assert response.json()["draft"]["id"] == draft.pk
    assert deliver(queued) == ["delivered"]


def test_a_worker_sweeps_the_callbacks_every_minute():
    from django_q.models import Schedule

    schedule = Schedule.objects.get(func="drafts.api.callbacks.sweep_callbacks")
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == (Schedule.MINUTES, 1, -1)
    assert schedule.cluster == "replyhub-io"  # the I/O worker's: never behind the drafts


def test_a_delivery_whose_worker_died_is_tried_again(alice, mailbox, receiver, queued):
    _, draft = submit_with_callback(alice, receiver.url)
    Draft.objects.filter(pk=draft.pk).update(status=Draft.READY, version=2)
    callback = ApiCallback.objects.get(draft=draft)
    long_ago = timezone.now() - timedelta(minutes=5)
    ApiCallback.objects.filter(pk=callback.pk).update(
        state=ApiCallback.DELIVERING, delivering_since=long_ago, attempts=1
    )
    queued.clear()
    assert sweep_callbacks() == "1 revived, 1 queued"
    assert deliver(queued) == ["delivered"]
    callback.refresh_from_db()
    assert (callback.state, callback.attempts) == (ApiCallback.DELIVERED, 2)

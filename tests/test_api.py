"""The REST API: tokens, submitting mail, reading and deciding drafts, and the quick
analysis. Callbacks are in test_api_callbacks.py, the tokens page in test_api_tokens_page.py,
the schema in test_api_schema.py."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from drafts import tasks
from drafts.api.tokens import ApiToken, hash_token
from drafts.models import Draft, Mailbox, Message, Outbox, ReviewEvent
from tests.apiclient import Api, ScriptedModel, api_for, draft_url, error_of, record_tasks
from tests.conftest import all_at_once, mail_bytes, make_ready_draft

pytestmark = pytest.mark.django_db

REPLY = "Dear Olivia,\n\nThe Professional plan includes the API.\n\nAcme Cloud Support Team"


@pytest.fixture
def api(alice) -> Api:
    return api_for(alice)


@pytest.fixture
def sales(db) -> Mailbox:
    """A mailbox alice does not review."""
    return Mailbox.objects.create(name="sales", address="sales@acme.example")


@pytest.fixture
def queued(monkeypatch, settings) -> list[tuple[str, tuple]]:
    return record_tasks(monkeypatch, settings)


# --- Tokens --------------------------------------------------------------------------------


def test_a_request_without_a_token_is_refused_with_401(client, mailbox):
    response = client.get("/api/v1/drafts")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert error_of(response)["code"] == "unauthorized"


def test_an_unknown_token_is_refused_with_401(mailbox):
    for secret in ("rh_nothing_here", "not-even-our-format", "rh_" + "x" * 300):
        response = Api(secret).get("/api/v1/drafts")
        assert response.status_code == 401
        assert "unknown or has been revoked" in error_of(response)["message"]


def test_a_revoked_token_is_refused_with_401(alice, mailbox):
    token, secret = ApiToken.issue(alice, "crm")
    assert Api(secret).get("/api/v1/drafts").status_code == 200
    assert token.revoke()
    assert not token.revoke()  # once is enough
    assert Api(secret).get("/api/v1/drafts").status_code == 401


def test_a_deactivated_users_token_stops_working(alice, mailbox):
    api = api_for(alice)
    alice.is_active = False
    alice.save()
    assert api.get("/api/v1/drafts").status_code == 401


def test_only_the_hash_of_the_token_is_stored(alice):
    token, secret = ApiToken.issue(alice, "crm")
    assert secret.startswith(f"rh_{token.prefix}_")
    assert token.token_hash == hashlib.sha256(secret.encode()).hexdigest() == hash_token(secret)
    # The random part (URL-safe base64, which may itself hold "_"): all after the prefix.
    secret_part = secret.removeprefix(f"rh_{token.prefix}_")
    assert len(secret_part) == 43
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM drafts_apitoken")
        stored = " ".join(str(value) for row in cursor.fetchall() for value in row)
    assert token.prefix in stored
    assert secret_part not in stored
    assert secret not in stored


def test_each_use_is_recorded_at_most_once_a_minute(alice, mailbox):
    token, secret = ApiToken.issue(alice, "crm")
    assert token.last_used_at is None
    Api(secret).get("/api/v1/drafts")
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None
    Api(secret).get("/api/v1/drafts")
    token.refresh_from_db()
    assert token.last_used_at == first


def test_a_session_does_not_authenticate_and_tokens_need_no_csrf_token(alice, mailbox):
    draft = make_ready_draft(mailbox)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(alice)
    assert browser.get("/api/v1/drafts").status_code == 401
    _, secret = ApiToken.issue(alice, "crm")
    api = Api(secret, browser)
    response = api.post(draft_url(draft, "approve"), {"version": draft.version})
    assert response.status_code == 200, response.content


def test_a_read_only_token_reads_but_may_not_decide_or_submit(alice, mailbox):
    draft = make_ready_draft(mailbox)
    api = api_for(alice, ApiToken.READ)
    assert api.get(draft_url(draft)).status_code == 200
    response = api.post(draft_url(draft, "approve"), {"version": draft.version})
    assert response.status_code == 403
    assert error_of(response)["code"] == "forbidden"
    assert api.post("/api/v1/messages", {"from": "a@b.example", "text": "hi"}).status_code == 403
    assert Draft.objects.get(pk=draft.pk).status == Draft.READY


def test_the_rate_limit_answers_429_with_retry_after_per_token(alice, mailbox, settings):
    settings.REPLYHUB_API_RATE_LIMIT = 3
    api, other = api_for(alice), api_for(alice)
    assert [api.get("/api/v1/drafts").status_code for _ in range(3)] == [200, 200, 200]
    response = api.get("/api/v1/drafts")
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    assert error_of(response)["code"] == "rate_limited"
    assert other.get("/api/v1/drafts").status_code == 200  # counted per token


def test_a_wrong_method_is_405_and_an_unknown_path_a_json_404(api, mailbox):
    response = api.client.delete("/api/v1/drafts", headers=api.headers)
    assert response.status_code == 405
    assert response["Allow"] == "GET"
    response = api.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


# --- Submitting mail -----------------------------------------------------------------------


def test_raw_mail_is_stored_and_queued_like_an_import_and_a_duplicate_returns_it(
    api, mailbox, queued
):
    raw = mail_bytes("inquiry_en.eml")
    response = api.post("/api/v1/messages", raw, content_type="message/rfc822")
    assert response.status_code == 201, response.content
    data = response.json()
    message = Message.objects.get(pk=data["id"])
    assert bytes(message.raw) == raw
    assert data["subject"] == "Pricing for Acme CRM, 25 seats"
    assert data["draft"]["status"] == Draft.QUEUED
    assert data["draft"]["id"] == message.draft.pk
    assert data["draft"]["url"] == f"http://testserver/api/v1/drafts/{message.draft.pk}"
    assert response["Location"] == data["url"] == f"http://testserver/api/v1/messages/{message.pk}"
    assert data["duplicate"] is False
    assert queued == [("drafts.tasks.generate_draft", (message.draft.pk,))]

    again = api.post("/api/v1/messages", raw, content_type="message/rfc822")
    assert again.status_code == 200
    assert again.json()["id"] == message.pk
    assert again.json()["duplicate"] is True
    assert Draft.objects.count() == 1


def test_raw_mail_can_come_base64_encoded_in_json(api, mailbox):
    raw = mail_bytes("chinese_gb2312.eml")
    response = api.post("/api/v1/messages", {"raw": base64.b64encode(raw).decode()})
    assert response.status_code == 201, response.content
    assert bytes(Message.objects.get(pk=response.json()["id"]).raw) == raw


def test_an_email_given_as_fields_is_stored_and_a_retry_is_not_stored_twice(api, mailbox):
    fields = {
        "from": "Li Wei <li.wei@example.cn>",
        "subject": "发票问题",
        "text": "您好，我需要上个月的发票。订单号 A-2024-0042。",
    }
    response = api.post("/api/v1/messages", fields)
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["from_address"] == "li.wei@example.cn"
    assert data["from_name"] == "Li Wei"
    assert data["to"] == "support@acme.example"  # the mailbox's address
    assert data["subject"] == "发票问题"
    assert "A-2024-0042" in data["text"]
    assert data["message_id"].endswith("@replyhub.invalid>")
    assert data["date"] is not None

    retry = api.post("/api/v1/messages", fields)
    assert retry.status_code == 200
    assert retry.json()["id"] == data["id"]
    changed = api.post("/api/v1/messages", {**fields, "text": "另一封邮件。"})
    assert changed.status_code == 201
    assert Draft.objects.count() == 2


def test_fields_with_a_date_and_message_id_keep_them_and_thread_with_the_customer(api, mailbox):
    first = make_ready_draft(mailbox).message  # from olivia.brown@northwind.example
    response = api.post(
        "/api/v1/messages",
        {
            "from": first.from_address,
            "subject": "Re: " + first.subject,
            "text": "One more question about the seats.",
            "message_id": "follow-up-1@northwind.example",
            "in_reply_to": first.message_id,
            "date": "2025-03-01T09:30:00+08:00",
        },
    )
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["message_id"] == "<follow-up-1@northwind.example>"
    assert data["date"] == "2025-03-01T01:30:00Z"
    assert data["thread"] == first.thread_id


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"text": "hi"}, "from", "is required"),
        ({"from": "a@b.example"}, "text", "is required"),
        ({"from": "nobody", "text": "hi"}, "from", "email address"),
        ({"from": "x <" + "a" * 400 + "@example.com>", "text": "hi"}, "from", "email address"),
        ({"from": "a@b.example", "to": "a@@b", "text": "hi"}, "to", "email address"),
        ({"from": "a@b.example", "text": 5}, "text", "must be a string"),
        (
            {"from": "a@b.example", "text": "hi", "subject": "a\r\nBcc: x@y"},
            "subject",
            "line break",
        ),
        ({"from": "a@b.example", "text": "hi", "date": "yesterday"}, "date", "ISO 8601"),
        ({"from": "a@b.example", "text": "hi", "date": "2025-03-01T09:30:00"}, "date", "time zone"),
        ({"from": "a@b.example", "text": "hi", "message_id": "no at sign"}, "message_id", "<"),
        ({"from": "a@b.example", "text": "hi", "mailbox": "one"}, "mailbox", "integer"),
        ({"from": "a@b.example", "text": "hi", "mailbox": True}, "mailbox", "integer"),
        ({"from": "a@b.example", "text": "hi", "mailbox": 0}, "mailbox", "at least 1"),
        ({"from": "a@b.example", "text": "hi", "subject": None}, "subject", "must be a string"),
        ({"from": "a@b.example", "text": "nul\x00byte"}, "text", "NUL"),
        (
            {"from": "a@b.example", "text": "hi", "date": "0001-01-01T00:00:00+01:00"},
            "date",
            "range",
        ),
        (
            {"from": "a@b.example", "text": "hi", "callback_url": "http://x.example/\x01"},
            "callback_url",
            "control",
        ),
        ({"from": "a@b.example", "text": "hi", "callback_url": "ftp://x"}, "callback_url", "http"),
        ({"raw": "!!not base64!!"}, "raw", "base64"),
        ({"raw": base64.b64encode(b"just some words").decode()}, "raw", "not an email"),
        ({"raw": "", "from": "a@b.example"}, "from", "not both"),
    ],
)
def test_bad_submissions_are_refused_naming_the_field(api, mailbox, body, field, words):
    response = api.post("/api/v1/messages", body)
    assert response.status_code == 400, response.content
    error = error_of(response)
    assert error["field"] == field
    assert words in error["message"]
    assert Message.objects.count() == 0


def test_bad_bodies_get_400_413_and_415(api, mailbox, settings):
    response = api.post("/api/v1/messages", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_json"
    assert api.post("/api/v1/messages", [1, 2]).status_code == 400
    response = api.post("/api/v1/messages", "from=a", content_type="text/plain")
    assert response.status_code == 415
    assert "message/rfc822" in error_of(response)["message"]
    settings.REPLYHUB_API_MAX_BODY_BYTES = 1000
    response = api.post("/api/v1/messages", b"x" * 1001, content_type="message/rfc822")
    assert response.status_code == 413
    assert error_of(response)["code"] == "too_large"
    assert Message.objects.count() == 0


def test_a_reviewer_submits_only_to_their_mailboxes(api, alice, mailbox, sales):
    response = api.post(
        "/api/v1/messages", {"from": "a@b.example", "text": "hi", "mailbox": sales.pk}
    )
    assert response.status_code == 400
    assert error_of(response)["field"] == "mailbox"
    sales.reviewers.add(alice)  # two mailboxes now: she must say which
    response = api.post("/api/v1/messages", {"from": "a@b.example", "text": "hi"})
    assert error_of(response)["field"] == "mailbox"
    response = api.post(
        "/api/v1/messages", {"from": "a@b.example", "text": "hi", "mailbox": sales.pk}
    )
    assert response.status_code == 201
    assert response.json()["mailbox"] == sales.pk


# --- Reading -------------------------------------------------------------------------------


def test_messages_are_listed_a_page_at_a_time_and_only_the_visible_ones(api, mailbox, sales):
    from drafts.ingest import ingest_message

    mine = [
        ingest_message(mailbox, mail_bytes(name))[0]
        for name in ("inquiry_en.eml", "newsletter.eml", "with_attachment.eml")
    ]
    hidden, _ = ingest_message(sales, mail_bytes("inquiry_en.eml"))
    first = api.get("/api/v1/messages", limit=2).json()
    assert [m["id"] for m in first["results"]] == [mine[0].pk, mine[1].pk]
    assert "text" not in first["results"][0]
    assert first["results"][1]["no_draft_reason"] == "bulk"
    second = api.client.get(first["next"], headers=api.headers).json()
    assert [m["id"] for m in second["results"]] == [mine[2].pk]
    assert second["next_cursor"] is None
    assert second["results"][0]["attachments"][0]["filename"]
    assert api.get(f"/api/v1/messages/{hidden.pk}").status_code == 404
    detail = api.get(f"/api/v1/messages/{mine[0].pk}").json()
    assert "25 people" in detail["text"]
    assert api.get("/api/v1/messages", cursor="garbage").status_code == 400


def test_a_draft_is_returned_with_its_fields_flags_and_history(api, alice, mailbox):
    draft = make_ready_draft(mailbox, flags=["too_long: over 200 words"])
    draft.save_edit(alice, REPLY, draft.version)
    data = api.get(draft_url(draft)).json()
    assert data["status"] == "ready"
    assert data["intent"] == "inquiry"
    assert data["confidence"] == 0.8
    assert data["fields"]["customer_name"][0]["value"] == "Olivia Brown"
    assert data["flags"] == ["too_long: over 200 words"]
    assert data["reply_text"] == REPLY
    assert data["generated_text"].startswith("Dear Olivia Brown")
    assert data["version"] == draft.version == 2  # made, edited
    assert data["message"]["subject"] == "Pricing for Acme CRM, 25 seats"
    assert data["page"] == f"http://testserver/drafts/{draft.pk}/"
    [event] = data["history"]
    assert (event["action"], event["user"], event["text_after"]) == ("edit", "alice", REPLY)


def test_another_mailboxs_draft_is_a_404_to_a_reviewer_but_not_to_a_supervisor(
    api, carol, mailbox, sales
):
    hidden = make_ready_draft(sales)
    assert api.get(draft_url(hidden)).status_code == 404
    assert api.post(draft_url(hidden, "approve"), {"version": hidden.version}).status_code == 404
    assert api.get("/api/v1/drafts").json()["results"] == []
    assert api.get("/api/v1/drafts/99999999999999999999").status_code == 404
    assert api_for(carol).get(draft_url(hidden)).status_code == 200


def test_drafts_are_filtered_and_paged(api, mailbox, sales):
    inquiry = make_ready_draft(mailbox)
    complaint = make_ready_draft(mailbox, "chinese_gb2312.eml", intent="complaint")
    queued, _ = ingest(mailbox, "with_attachment.eml")

    def ids(**query: object) -> list[int]:
        response = api.get("/api/v1/drafts", **query)
        assert response.status_code == 200, response.content
        return [d["id"] for d in response.json()["results"]]

    assert ids() == [inquiry.pk, complaint.pk, queued.draft.pk]
    assert ids(status="ready") == [inquiry.pk, complaint.pk]
    assert ids(intent="complaint") == [complaint.pk]
    assert ids(mailbox=mailbox.pk, status="queued") == [queued.draft.pk]
    assert ids(mailbox=sales.pk) == []
    page = api.get("/api/v1/drafts", limit=2).json()
    assert len(page["results"]) == 2
    assert ids(limit=2, cursor=page["next_cursor"]) == [queued.draft.pk]
    for query, field in [
        ({"status": "done"}, "status"),
        ({"intent": "spam"}, "intent"),
        ({"mailbox": "x"}, "mailbox"),
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"updated_since": "last week"}, "updated_since"),
        ({"updated_since": "2025-03-01T09:30:00"}, "updated_since"),
        ({"updated_since": "9999-12-31T23:59:59-01:00"}, "updated_since"),
        ({"cursor": "e30"}, "cursor"),
        ({"cursor": cursor(["2025-03-01T00:00:00+00:00", 2**70])}, "cursor"),
        ({"cursor": cursor(["0001-01-01T00:00:00+01:00", 1])}, "cursor"),
        ({"limit": "²"}, "limit"),
        ({"mailbox": "١"}, "mailbox"),
    ]:
        response = api.get("/api/v1/drafts", **query)
        assert response.status_code == 400, query
        assert error_of(response)["field"] == field


def cursor(position: list) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode()


def ingest(mailbox: Mailbox, name: str) -> tuple[Message, bool]:
    from drafts.ingest import ingest_message

    return ingest_message(mailbox, mail_bytes(name))


def test_updated_since_finds_decided_drafts_but_not_merely_opened_ones(api, alice, bob, mailbox):
    decided = make_ready_draft(mailbox)
    opened = make_ready_draft(mailbox, "chinese_gb2312.eml")
    Draft.objects.update(updated_at=timezone.now() - timedelta(hours=1))
    since = (timezone.now() - timedelta(minutes=1)).isoformat()
    assert api.get("/api/v1/drafts", updated_since=since).json()["results"] == []
    assert opened.claim(bob)  # opening a draft changes nothing in it
    assert decided.reject(alice, "tone")
    results = api.get("/api/v1/drafts", updated_since=since).json()["results"]
    assert [(d["id"], d["status"]) for d in results] == [(decided.pk, "rejected")]


# --- Deciding ------------------------------------------------------------------------------


def test_approving_with_edited_text_queues_the_reply_and_records_who(api, alice, mailbox):
    draft = make_ready_draft(mailbox)
    response = api.post(
        draft_url(draft, "approve"), {"text": REPLY + "\r\n", "version": draft.version}
    )
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["status"] == Draft.APPROVED
    assert data["reply_text"] == REPLY
    assert data["decided_by"] == "alice"
    assert data["delivery"]["state"] == Outbox.QUEUED
    assert data["history"][-1]["action"] == "approve"
    event = ReviewEvent.objects.get(draft=draft, action=ReviewEvent.APPROVE)
    assert (event.user, event.text_after) == (alice, REPLY)
    assert Outbox.objects.filter(draft=draft).count() == 1


def test_approving_without_text_sends_the_draft_as_it_stands(api, mailbox):
    draft = make_ready_draft(mailbox)
    response = api.post(draft_url(draft, "approve"), {"version": draft.version})
    assert response.status_code == 200
    assert Draft.objects.get(pk=draft.pk).reply_text == draft.reply_text


def test_a_reply_with_placeholders_is_a_422_unless_they_are_allowed(api, mailbox):
    draft = make_ready_draft(mailbox)
    body = {"text": "Dear Olivia,\n\nSee you on [date].\n\n[Your Name]", "version": 1}
    response = api.post(draft_url(draft, "approve"), body)
    assert response.status_code == 422
    error = error_of(response)
    assert (error["code"], error["field"]) == ("placeholder_text", "text")
    assert error["placeholders"] == ["[date]", "[Your Name]"]
    assert (error["status"], error["version"]) == (Draft.READY, draft.version)
    assert Draft.objects.get(pk=draft.pk).status == Draft.READY and not Outbox.objects.exists()
    response = api.post(draft_url(draft, "approve"), {**body, "allow_placeholders": "yes"})
    assert response.status_code == 400 and error_of(response)["field"] == "allow_placeholders"
    response = api.post(draft_url(draft, "approve"), {**body, "allow_placeholders": True})
    assert response.status_code == 200 and response.json()["reply_text"] == body["text"]


def test_a_stale_version_is_a_409_with_the_current_version(api, bob, mailbox):
    draft = make_ready_draft(mailbox)
    read = draft.version
    assert draft.save_edit(bob, "Bob's better reply", read)
    response = api.post(draft_url(draft, "approve"), {"text": REPLY, "version": read})
    assert response.status_code == 409
    error = error_of(response)
    assert (error["code"], error["field"]) == ("version_conflict", "version")
    assert (error["status"], error["version"]) == ("ready", read + 1)
    draft.refresh_from_db()
    assert (draft.status, draft.reply_text) == (Draft.READY, "Bob's better reply")


def test_a_second_approval_is_a_409_and_sends_nothing_more(api, mailbox):
    draft = make_ready_draft(mailbox)
    assert api.post(draft_url(draft, "approve"), {"version": draft.version}).status_code == 200
    response = api.post(draft_url(draft, "approve"), {"version": draft.version + 1})
    assert response.status_code == 409
    assert error_of(response)["code"] == "not_awaiting_review"
    assert error_of(response)["status"] == Draft.APPROVED
    assert Outbox.objects.filter(draft=draft).count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_simultaneous_approvals_exactly_one_wins(alice, bob, mailbox):
    draft = make_ready_draft(mailbox)
    url, body = draft_url(draft, "approve"), {"text": REPLY, "version": draft.version}
    alices, bobs = api_for(alice), api_for(bob)
    statuses = all_at_once(
        lambda: alices.post(url, body).status_code, lambda: bobs.post(url, body).status_code
    )
    assert sorted(statuses) == [200, 409]
    assert Outbox.objects.filter(draft=draft).count() == 1
    assert ReviewEvent.objects.filter(draft=draft, action=ReviewEvent.APPROVE).count() == 1


def test_a_draft_someone_else_is_editing_is_a_409(api, bob, mailbox):
    draft = make_ready_draft(mailbox)
    assert draft.claim(bob)
    response = api.post(draft_url(draft, "approve"), {"version": draft.version})
    assert response.status_code == 409
    error = error_of(response)
    assert (error["code"], error["held_by"]) == ("claimed", "bob")
    assert Draft.objects.get(pk=draft.pk).status == Draft.READY


def test_rejecting_needs_a_known_reason_and_records_the_note(api, alice, mailbox):
    draft = make_ready_draft(mailbox)
    for body, field in [
        ({}, "reason"),
        ({"reason": "bored"}, "reason"),
        ({"reason": "tone", "note": 3}, "note"),
    ]:
        response = api.post(draft_url(draft, "reject"), body)
        assert response.status_code == 400
        assert error_of(response)["field"] == field
    response = api.post(
        draft_url(draft, "reject"), {"reason": "wrong_facts", "note": " The price is wrong. "}
    )
    assert response.status_code == 200
    assert (response.json()["reject_reason"], response.json()["reject_note"]) == (
        "wrong_facts",
        "The price is wrong.",
    )
    event = ReviewEvent.objects.get(draft=draft, action=ReviewEvent.REJECT)
    assert (event.user, event.reason, event.note) == (alice, "wrong_facts", "The price is wrong.")
    assert not Outbox.objects.exists()


def test_approving_needs_a_version_and_a_reply(api, mailbox):
    draft = make_ready_draft(mailbox)
    for body, field in [
        ({}, "version"),
        ({"version": "3"}, "version"),
        ({"version": -1}, "version"),
        ({"version": draft.version, "text": "  \n "}, "text"),
    ]:
        response = api.post(draft_url(draft, "approve"), body)
        assert response.status_code == 400, body
        assert error_of(response)["field"] == field
    response = api.post(
        draft_url(draft, "approve"), "version=1", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 415
    assert Draft.objects.get(pk=draft.pk).status == Draft.READY


# --- Analysis ------------------------------------------------------------------------------


def test_analyse_runs_the_model_now_and_stores_nothing(api, mailbox, monkeypatch):
    monkeypatch.setattr(tasks, "configured_backend", lambda: ScriptedModel())
    response = api.post(
        "/api/v1/analyse",
        {
            "text": "Your Acme CRM was down all morning!",
            "subject": "Outage",
            "from": "Li <li@x.example>",
        },
    )
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["intent"] == "complaint"
    assert data["confidence"] > 0.9
    assert "sorry about the outage" in data["reply"]
    assert data["template"].startswith("default v")
    assert data["seconds"] >= 0
    assert not Message.objects.exists() and not Draft.objects.exists()


def test_analyse_answers_504_when_the_model_is_too_slow(api, mailbox, monkeypatch, settings):
    gate = threading.Event()
    monkeypatch.setattr(tasks, "configured_backend", lambda: ScriptedModel(gate))
    settings.REPLYHUB_API_ANALYSE_TIMEOUT = 0.3
    try:
        response = api.post("/api/v1/analyse", {"text": "Hello?"})
        assert response.status_code == 504
        assert error_of(response)["code"] == "timeout"
    finally:
        gate.set()  # let the abandoned analysis finish


def test_analyse_refuses_bad_input_and_reports_a_failing_model(api, mailbox, monkeypatch):
    assert error_of(api.post("/api/v1/analyse", {"subject": "x"}))["field"] == "text"
    assert error_of(api.post("/api/v1/analyse", {"text": "  "}))["field"] == "text"

    def broken():
        raise OSError("model file missing")

    monkeypatch.setattr(tasks, "configured_backend", broken)
    response = api.post("/api/v1/analyse", {"text": "Hello?"})
    assert response.status_code == 503
    assert "model file missing" in error_of(response)["message"]

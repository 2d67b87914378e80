"""Reviewing in the browser: queue, draft page, edit, approve, reject, retry."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from drafts.models import Draft, ReviewEvent
from drafts.outbox import Outbox
from tests.conftest import make_ready_draft

pytestmark = pytest.mark.django_db


def act(client, draft, **data):
    return client.post(reverse("draft_action", args=[draft.pk]), data, follow=True)


def test_pages_require_login(client, mailbox):
    draft = make_ready_draft(mailbox)
    for url in (
        reverse("queue"),
        reverse("draft", args=[draft.pk]),
        reverse("message_body", args=[draft.message_id]),
        reverse("stats"),
    ):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    act(client, draft, action="approve", reply_text="x")
    assert Draft.objects.get(pk=draft.pk).status == Draft.READY


def test_login_form_works(client, alice):
    response = client.post(
        reverse("login"), {"username": "alice", "password": "alice-password-1"}, follow=True
    )
    assert response.context["user"].username == "alice"
    assert response.request["PATH_INFO"] == reverse("queue")


def test_queue_lists_drafts_awaiting_review(alice_client, mailbox):
    make_ready_draft(mailbox)
    response = alice_client.get(reverse("queue"))
    assert response.status_code == 200
    assert "Pricing for Acme CRM, 25 seats" in response.text
    assert "inquiry · 咨询" in response.text
    assert 'Awaiting review <span class="count">1</span>' in response.text


def test_draft_page_shows_email_draft_intent_and_fields(alice_client, mailbox):
    draft = make_ready_draft(mailbox)
    response = alice_client.get(reverse("draft", args=[draft.pk]))
    assert "We are evaluating Acme CRM" in response.text
    assert "Thank you for your interest." in response.text
    assert "inquiry · 咨询" in response.text
    assert "Olivia Brown" in response.text
    assert "Approve &amp; send" in response.text


def test_save_edit_keeps_the_text_and_records_it(alice_client, alice, mailbox):
    draft = make_ready_draft(mailbox)
    response = act(alice_client, draft, action="save", reply_text="Dear Olivia,\r\n\r\nEdited.")
    assert "Edit saved." in response.text
    draft.refresh_from_db()
    assert draft.reply_text == "Dear Olivia,\n\nEdited."
    assert draft.status == Draft.READY
    event = draft.events.get()
    assert (event.action, event.user, event.text_after) == ("edit", alice, draft.reply_text)


def test_approve_records_the_decision_and_queues_one_send(alice_client, alice, mailbox):
    draft = make_ready_draft(mailbox)
    response = act(alice_client, draft, action="approve", reply_text="Dear Olivia,\n\nYes.")
    assert "Approved. The reply is being sent." in response.text
    draft.refresh_from_db()
    assert draft.status == Draft.APPROVED
    assert draft.decided_by == alice
    assert draft.outgoing_message_id.endswith("@acme.example>")
    assert draft.events.get().action == ReviewEvent.APPROVE


def test_a_second_approval_changes_nothing(alice_client, bob, client, mailbox):
    draft = make_ready_draft(mailbox)
    act(alice_client, draft, action="approve", reply_text="First answer")
    client.force_login(bob)
    response = act(client, draft, action="approve", reply_text="Second answer")
    assert "Someone else may have acted on it first." in response.text
    draft.refresh_from_db()
    assert draft.reply_text == "First answer"
    assert draft.decided_by.username == "alice"


def test_an_empty_reply_cannot_be_approved(alice_client, mailbox):
    draft = make_ready_draft(mailbox)
    response = act(alice_client, draft, action="approve", reply_text="   ")
    assert "The reply is empty." in response.text
    assert Draft.objects.get(pk=draft.pk).status == Draft.READY


def test_a_reply_with_placeholders_is_not_sent_until_they_are_filled_in(alice_client, mailbox):
    draft = make_ready_draft(mailbox)
    text = "Dear Olivia,\n\nThe quote follows.\n\n[Your Name]\n【公司名称】\n[Your Name]"
    page = act(alice_client, draft, action="approve", reply_text=text)
    found = "([Your Name], 【公司名称】)"
    assert f"Not sent: the reply still has placeholder text {found}." in page.text
    assert Draft.objects.get(pk=draft.pk).status == Draft.READY
    assert not Outbox.objects.exists()
    # The reviewer's text is back in the editor, with the way to send it as written.
    assert page.context["reply_text"] == text
    assert 'name="placeholders_ok"' in page.text
    fixed = text.replace("[Your Name]", "Ann Lee").replace("【公司名称】", "Acme")
    page = act(alice_client, draft, action="approve", reply_text=fixed)
    assert "Approved. The reply is being sent." in page.text
    assert Draft.objects.get(pk=draft.pk).reply_text == fixed


def test_brackets_that_belong_in_the_reply_are_sent_when_the_reviewer_says_so(
    alice_client, mailbox
):
    draft = make_ready_draft(mailbox)
    text = "Dear Olivia,\n\nReply with [ticket 4521] in the subject."
    page = act(alice_client, draft, action="approve", reply_text=text, placeholders_ok="1")
    assert "Approved. The reply is being sent." in page.text
    assert Draft.objects.get(pk=draft.pk).reply_text == text


def test_reject_needs_a_reason(alice_client, mailbox):
    draft = make_ready_draft(mailbox)
    response = act(alice_client, draft, action="reject")
    assert "Choose a reason" in response.text
    assert Draft.objects.get(pk=draft.pk).status == Draft.READY
    act(alice_client, draft, action="reject", reason="wrong_facts", note="invented a price")
    draft.refresh_from_db()
    assert draft.status == Draft.REJECTED
    assert draft.reject_reason == "wrong_facts"
    event = draft.events.get()
    assert (event.reason, event.note) == ("wrong_facts", "invented a price")
    page = alice_client.get(reverse("draft", args=[draft.pk])).text
    assert "Rejected by alice — Wrong or invented facts: invented a price" in page


def test_a_failed_draft_shows_its_reason_and_can_be_retried(alice_client, mailbox):
    draft = make_ready_draft(
        mailbox, status=Draft.FAILED, error="ModelLoadError: Model not found at /nowhere"
    )
    response = alice_client.get(reverse("queue") + "?tab=problems")
    assert "Model not found at /nowhere" in response.text
    response = act(alice_client, draft, action="retry")
    assert "Queued for the model again." in response.text
    assert Draft.objects.get(pk=draft.pk).status == Draft.QUEUED


def test_email_html_is_served_sandboxed(alice_client, mailbox):
    draft = make_ready_draft(mailbox, "html_hostile.eml")
    response = alice_client.get(reverse("message_body", args=[draft.message_id]))
    assert "<script" not in response.text
    assert "sandbox" in response["Content-Security-Policy"]
    assert "default-src 'none'" in response["Content-Security-Policy"]
    assert "onclick" not in response.text
    assert "onerror" not in response.text
    assert "javascript:" not in response.text
    assert "tracker.example" not in response.text
    assert "<form" not in response.text
    assert "<b>Acme Analytics</b>" in response.text


def test_all_failed_drafts_can_be_retried_at_once(alice_client, mailbox):
    make_ready_draft(mailbox, status=Draft.FAILED, error="ModelLoadError: missing")
    make_ready_draft(mailbox, "chinese_gb2312.eml", status=Draft.FAILED, error="missing")
    make_ready_draft(mailbox, "html_hostile.eml")
    page = alice_client.get(reverse("queue") + "?tab=problems")
    assert "Retry generation for all 2 failed draft(s)" in page.text
    response = alice_client.post(reverse("retry_failed"), follow=True)
    assert "2 draft(s) queued for the model again." in response.text
    statuses = sorted(Draft.objects.values_list("status", flat=True))
    assert statuses == [Draft.QUEUED, Draft.QUEUED, Draft.READY]


def test_a_send_failure_shows_the_draft_still_approved_with_the_error(alice_client, mailbox):
    draft = make_ready_draft(mailbox, status=Draft.SEND_FAILED, send_error="SMTP down")
    page = alice_client.get(reverse("draft", args=[draft.pk]))
    assert "Approved, sending failed" in page.text
    assert "Sending failed: SMTP down" in page.text
    assert "Retry sending" in page.text


def test_the_stylesheet_is_served_without_debug(client, settings):
    assert settings.DEBUG is False
    response = client.get("/static/replyhub.css")
    assert response.status_code == 200
    assert b".tabs" in b"".join(response.streaming_content)


def test_pages_have_an_icon_and_favicon_ico_finds_it(client):
    # Without one, every browser asked for /favicon.ico and logged a 404 on the console.
    page = client.get("/accounts/login/")
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in page.text
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"] == "/static/favicon.svg"
    icon = client.get("/static/favicon.svg")
    assert icon.status_code == 200 and icon["Content-Type"] == "image/svg+xml"
    assert b"<svg" in b"".join(icon.streaming_content)


def test_a_draft_can_be_asked_for_again_at_another_temperature(alice_client, mailbox):
    draft = make_ready_draft(mailbox)
    page = act(alice_client, draft, action="regenerate", temperature="0.1")
    assert "Queued for the model again." in page.text
    draft.refresh_from_db()
    assert draft.status == Draft.QUEUED
    assert draft.generation["requested"] == {"temperature": 0.1, "template": None}
    event = draft.events.get(action=ReviewEvent.REGENERATE)
    assert event.note == "temperature 0.1"
    assert event.text_before == draft.reply_text


def test_an_impossible_temperature_is_refused(alice_client, mailbox):
    draft = make_ready_draft(mailbox)
    assert "between 0 and 2" in act(alice_client, draft, action="regenerate", temperature="9").text
    assert Draft.objects.get(pk=draft.pk).status == Draft.READY


def test_a_draft_can_be_reassigned_to_another_reviewer(alice_client, bob, mailbox):
    draft = make_ready_draft(mailbox)
    assert "Assigned to bob." in act(alice_client, draft, action="reassign", to=bob.pk).text
    draft.refresh_from_db()
    assert draft.assigned_to == bob
    assert draft.events.get(action=ReviewEvent.REASSIGN).note == "to bob"


def test_a_draft_cannot_be_assigned_to_someone_outside_its_mailbox(alice_client, mailbox):
    outsider = User.objects.create_user("eve", "eve@x.example", "eve-password-1")
    draft = make_ready_draft(mailbox, assigned_to=None)
    act(alice_client, draft, action="reassign", to=outsider.pk)
    assert Draft.objects.get(pk=draft.pk).assigned_to is None


def test_the_history_shows_who_did_what_with_the_text_before_and_after(alice_client, mailbox):
    draft = make_ready_draft(mailbox)
    act(alice_client, draft, action="save", reply_text="Better answer")
    page = alice_client.get(reverse("draft", args=[draft.pk])).text
    assert "Edited by alice" in page
    assert "Better answer" in page
    assert "Thank you for your interest." in page  # the text before

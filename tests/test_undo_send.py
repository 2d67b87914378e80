"""Undoing an approval: an approved reply waits REPLYHUB_UNDO_SECONDS before it is sent, and
until the mail server has it, a person can take the approval back; the draft is then in
review again, with its text, and nothing is sent."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from drafts.api.tokens import ApiToken
from drafts.models import Draft, Outbox, ReviewEvent
from drafts.sending import send_outbox, sweep_outbox
from tests.apiclient import api_for, draft_url, error_of
from tests.conftest import make_ready_draft

pytestmark = pytest.mark.django_db

TEXT = "Dear Olivia,\n\nThe price is 99 per seat.\n\nAcme"


@pytest.fixture
def window(settings):
    settings.REPLYHUB_UNDO_SECONDS = 10
    return timedelta(seconds=10)


def approved(mailbox, user, name="inquiry_en.eml") -> Draft:
    draft = make_ready_draft(mailbox, name)
    assert draft.approve(user, TEXT)
    return draft


def due_now(outbox: Outbox) -> None:
    Outbox.objects.filter(pk=outbox.pk).update(next_attempt_at=timezone.now())


def test_an_approved_reply_waits_for_its_window_on_the_io_queue(
    mailbox, alice, smtp_server, window
):
    before = timezone.now()
    draft = approved(mailbox, alice)
    outbox = draft.delivery
    assert outbox.state == Outbox.QUEUED
    assert before + window <= outbox.next_attempt_at <= timezone.now() + window
    assert outbox.undo_until == outbox.next_attempt_at
    # A one-off schedule for that time, on the I/O workers' queue, runs the send task.
    [schedule] = Schedule.objects.filter(func="drafts.sending.send_outbox")
    assert schedule.schedule_type == Schedule.ONCE
    assert schedule.next_run == outbox.next_attempt_at
    assert schedule.cluster == django_settings.REPLYHUB_IO_QUEUE
    assert schedule.args == repr(outbox.pk)
    # Within the window nothing goes out, even if a send task turns up early.
    assert send_outbox(outbox.pk).startswith("skipped")
    assert sweep_outbox() == "0 uncertain, 0 queued"
    assert smtp_server.received == []
    due_now(outbox)
    assert send_outbox(outbox.pk) == "sent"
    assert len(smtp_server.received) == 1
    outbox.refresh_from_db()
    assert outbox.undo_until is None


def test_without_a_window_the_reply_is_queued_at_once(mailbox, alice, smtp_server):
    draft = approved(mailbox, alice)  # REPLYHUB_UNDO_SECONDS=0 (tests/conftest.py)
    assert not Schedule.objects.filter(func="drafts.sending.send_outbox").exists()
    assert draft.delivery.undo_until <= timezone.now()
    assert send_outbox(draft.delivery.pk) == "sent"


def test_undo_puts_the_draft_back_in_review_and_nothing_is_sent(
    mailbox, alice, smtp_server, window
):
    draft = approved(mailbox, alice)
    outbox = draft.delivery
    assert outbox.stop(alice)

    draft.refresh_from_db()
    outbox.refresh_from_db()
    assert (draft.status, outbox.state) == (Draft.READY, Outbox.CANCELLED)
    assert draft.reply_text == TEXT  # the approved text is in the editor, to be changed
    assert (draft.decided_at, draft.decided_by, draft.edit_distance) == (None, None, None)
    assert draft.held_by() == alice  # she is about to edit it
    assert draft.outgoing_message_id == ""
    undo = draft.events.last()
    assert (undo.action, undo.user, undo.text_before) == (ReviewEvent.UNDO, alice, TEXT)
    assert not Schedule.objects.filter(func="drafts.sending.send_outbox").exists()
    # A send task already on its way, or the sweep, finds nothing to send.
    due_now(outbox)
    assert send_outbox(outbox.pk).startswith("skipped")
    sweep_outbox()
    assert smtp_server.received == []
    assert not outbox.stop(alice)  # once

    # Approved again: a new outbox record and Message-ID, sent once.
    assert draft.approve(alice, TEXT + "\nP.S. 10% off this month.")
    again = draft.delivery
    assert again.pk != outbox.pk and again.message_id != outbox.message_id
    due_now(again)
    assert send_outbox(again.pk) == "sent"
    [(_, sent)] = smtp_server.received
    assert sent["Message-ID"] == again.message_id
    assert "10% off" in sent.get_content()


@pytest.mark.parametrize(
    "state, stoppable",
    [
        (Outbox.RETRY, True),  # the server said 4xx, or the line dropped before the data
        (Outbox.FAILED, True),  # 5xx: the server refused it
        (Outbox.SENDING, False),
        (Outbox.UNCERTAIN, False),  # the customer may have it
        (Outbox.SENT, False),
    ],
)
def test_undo_only_while_the_server_does_not_have_the_reply(mailbox, alice, state, stoppable):
    draft = approved(mailbox, alice)
    Outbox.objects.filter(pk=draft.delivery.pk).update(state=state, attempts=1)
    Draft.objects.filter(pk=draft.pk).update(status=Outbox.DRAFT_STATUS[state])
    assert draft.delivery.stop(alice) is stoppable
    draft.refresh_from_db()
    assert draft.status == (Draft.READY if stoppable else Outbox.DRAFT_STATUS[state])


def test_of_undo_and_the_send_claim_exactly_one_wins(mailbox, alice, smtp_server, window):
    draft = approved(mailbox, alice)
    outbox = draft.delivery
    due_now(outbox)
    assert outbox.claim()  # a worker takes it first
    assert not Outbox.objects.get(pk=outbox.pk).stop(alice)
    draft.refresh_from_db()
    assert draft.status == Draft.SENDING and draft.decided_by == alice


def test_an_undone_approval_is_not_counted_in_the_stats(
    mailbox, alice, carol, client, smtp_server, window
):
    kept, undone = approved(mailbox, alice), approved(mailbox, alice, "with_attachment.eml")
    assert undone.delivery.stop(alice)
    client.force_login(carol)
    [row] = client.get(reverse("stats")).context["rows"]
    assert (row.reviewer, row.decided, row.approved_edited) == ("alice", 1, 1)
    assert kept.delivery.state == Outbox.QUEUED


# -- in the browser's pages --------------------------------------------------------------


def test_the_next_page_offers_undo_until_the_window_closes(mailbox, alice, alice_client, window):
    first = make_ready_draft(mailbox)
    second = make_ready_draft(mailbox, "with_attachment.eml")
    page = reverse("draft", args=[first.pk])
    response = alice_client.post(
        reverse("draft_action", args=[first.pk]),
        {"action": "approve", "reply_text": TEXT, "next": second.pk},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == reverse("draft", args=[second.pk])
    until = timezone.localtime(first.delivery.undo_until)
    [offer] = response.context["undo_offers"]
    assert offer["draft"] == first.pk
    html = response.content.decode()
    assert f"goes out at {until:%H:%M:%S}" in html
    assert "Pricing for Acme CRM, 25 seats" in html
    assert f'action="{reverse("draft_action", args=[first.pk])}"' in html
    # The queue shows it too, and the approved draft's page says when it goes out.
    assert alice_client.get(reverse("queue")).context["undo_offers"] == [offer]
    detail = alice_client.get(page)
    assert detail.context["stoppable"]
    assert "Undo the approval (back to review)" in detail.content.decode()
    # Once the window has closed, the banner is gone (the draft page still offers the undo
    # while nothing has been tried).
    Outbox.objects.filter(pk=first.delivery.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )
    session = alice_client.session
    session["undo-offers"] = [{**offer, "until": timezone.now().isoformat()}]
    session.save()
    assert alice_client.get(reverse("queue")).context["undo_offers"] == []
    assert "undo-offers" in alice_client.session and alice_client.session["undo-offers"] == []


def test_undo_in_the_browser_returns_to_the_editor(mailbox, alice, alice_client, window):
    draft = make_ready_draft(mailbox)
    action = reverse("draft_action", args=[draft.pk])
    alice_client.post(action, {"action": "approve", "reply_text": TEXT})
    response = alice_client.post(action, {"action": "undo"}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("draft", args=[draft.pk])
    html = response.content.decode()
    assert "Not sent: the approval is undone." in html
    assert response.context["undo_offers"] == []
    assert response.context["draft"].status == Draft.READY
    assert response.context["reply_text"] == TEXT
    assert "readonly" not in re.search(r"<textarea[^>]*>", html).group(0)
    # Undoing again says why nothing changed.
    again = alice_client.post(action, {"action": "undo"}, follow=True)
    assert "Nothing to undo: the draft is already back in review." in again.content.decode()


def test_too_late_to_undo_says_so(mailbox, alice, alice_client, smtp_server, window):
    draft = make_ready_draft(mailbox)
    action = reverse("draft_action", args=[draft.pk])
    alice_client.post(action, {"action": "approve", "reply_text": TEXT})
    due_now(draft.delivery)
    assert send_outbox(draft.delivery.pk) == "sent"
    response = alice_client.post(action, {"action": "undo"}, follow=True)
    assert "Too late to undo: the reply is “Sent”." in response.content.decode()
    assert len(smtp_server.received) == 1


def test_with_no_window_the_approval_says_it_is_being_sent(mailbox, alice, alice_client):
    draft = make_ready_draft(mailbox)
    response = alice_client.post(
        reverse("draft_action", args=[draft.pk]),
        {"action": "approve", "reply_text": TEXT},
        follow=True,
    )
    assert "Approved. The reply is being sent." in response.content.decode()
    assert response.context["undo_offers"] == []


# -- over the API ---------------------------------------------------------------------------


def test_the_api_reports_the_window_and_undoes(mailbox, alice, window):
    draft = make_ready_draft(mailbox)
    api = api_for(alice)
    body = api.post(draft_url(draft, "approve"), {"version": draft.version}).json()
    assert body["status"] == Draft.APPROVED
    assert body["delivery"]["undo_until"] == body["delivery"]["next_attempt_at"]

    undone = api.post(draft_url(draft, "undo"))
    assert undone.status_code == 200
    body = undone.json()
    assert body["status"] == Draft.READY and body["decided_at"] is None
    assert body["delivery"]["state"] == Outbox.CANCELLED
    assert body["history"][-1]["action"] == ReviewEvent.UNDO
    assert body["held_by"] is None  # an API client holds nothing

    refused = api.post(draft_url(draft, "undo"))
    assert refused.status_code == 409
    assert error_of(refused)["code"] == "not_approved"
    assert error_of(refused)["status"] == Draft.READY


def test_the_api_refuses_an_undo_too_late_or_for_a_read_only_token(mailbox, alice, window):
    draft = approved(mailbox, alice)
    assert api_for(alice, ApiToken.READ).post(draft_url(draft, "undo")).status_code == 403
    due_now(draft.delivery)
    assert draft.delivery.claim()
    refused = api_for(alice).post(draft_url(draft, "undo"))
    assert refused.status_code == 409
    assert error_of(refused)["code"] == "too_late"
    assert error_of(refused)["status"] == Draft.SENDING


@pytest.mark.parametrize(
    "value, problem",
    [
        ("ten", "REPLYHUB_UNDO_SECONDS must be a whole number, not 'ten'."),
        ("-5", "REPLYHUB_UNDO_SECONDS must be between 0 and 3600, not -5."),
        ("7200", "REPLYHUB_UNDO_SECONDS must be between 0 and 3600, not 7200."),
    ],
)
def test_a_bad_window_is_refused_by_name(value, problem):
    env = {**os.environ, "REPLYHUB_UNDO_SECONDS": value}
    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=django_settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    assert problem in done.stderr

"""The retention period: emails handled long ago lose their content, never their numbers,
and nothing still in someone's work is touched."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from drafts import retention, search
from drafts.models import Attachment, Draft, Message, ReviewEvent
from drafts.notify import Notification, NotificationChannel
from drafts.outbox import Outbox
from drafts.sending import send_outbox
from tests.apiclient import api_for
from tests.conftest import make_ready_draft

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


def stored_ago(draft: Draft, days: int) -> Draft:
    """The draft's email, and the copy of the reply sent to it, were stored ``days`` ago."""
    replies = Message.objects.filter(in_reply_to=draft.message.message_id, direction="out")
    Message.objects.filter(pk=draft.message_id).update(received_at=timezone.now() - days * DAY)
    replies.update(received_at=timezone.now() - days * DAY)
    return draft


@pytest.fixture
def history(mailbox, alice, smtp_server):
    """Handled 100 days ago: one sent (with an attachment), one rejected, one that failed to
    send (with its notification); still in work although as old: one awaiting review, one
    approved; and one sent yesterday."""
    NotificationChannel.objects.create(
        mailbox=mailbox, name="team", kind="webhook", url="http://127.0.0.1:9/hook"
    )
    sent = make_ready_draft(mailbox, "with_attachment.eml")
    assert sent.approve(alice, "Dear Sam,\n\nThe export limit is lifted.\n\nAcme")
    assert send_outbox(sent.delivery.pk) == "sent"
    rejected = make_ready_draft(mailbox, "chinese_gb2312.eml")
    assert rejected.reject(alice, "wrong_facts", "李娜 asked about 发票")
    failed = make_ready_draft(mailbox, "reply_in_thread.eml")
    assert failed.approve(alice, failed.reply_text)
    Outbox.objects.filter(pk=failed.delivery.pk).update(state=Outbox.SENDING, attempts=1)
    Outbox.objects.get(pk=failed.delivery.pk).mark_failed("550 5.1.1 <olivia@northwind.example>")
    waiting = make_ready_draft(mailbox, "inquiry_en.eml")
    approved = make_ready_draft(mailbox, "html_hostile.eml")
    Draft.objects.filter(pk=approved.pk).update(status=Draft.APPROVED)
    for draft in (sent, rejected, failed, waiting, approved):
        stored_ago(draft, 100)
    recent = make_ready_draft(mailbox, "forged_reference.eml")
    assert recent.approve(alice, recent.reply_text)
    stored_ago(recent, 1)
    return {"sent": sent, "rejected": rejected, "failed": failed, "waiting": waiting,
            "approved": approved, "recent": recent}  # fmt: skip


def stats_rows(client, carol):
    client.force_login(carol)
    rows = client.get(reverse("stats")).context["rows"]
    return [(r.label, r.decided, r.approved_edited, r.rejected, r.sent, r.send_failed,
             r.median_edit, r.median_answer_seconds) for r in rows]  # fmt: skip


def test_handled_mail_loses_its_content_and_keeps_its_numbers(history, client, carol):
    before = stats_rows(client, carol)
    kept = {n: Draft.objects.filter(pk=d.pk).values("status", "intent", "decided_at").get()
            for n, d in history.items()}  # fmt: skip
    assert search.first_matching_ids("Error log", 10)
    assert retention.apply_retention(90) == (
        "4 messages, 3 drafts, 2 attachments, 3 conversations redacted"
    )
    for name in ("sent", "rejected", "failed"):
        draft = Draft.objects.get(pk=history[name].pk)
        message = draft.message
        assert message.redacted_at is not None
        assert (bytes(message.raw), message.subject, message.from_address, message.text) == (
            b"",
            "",
            "",
            "",
        )
        assert (draft.reply_text, draft.generated_text, draft.fields) == ("", "", {})
        assert (
            not ReviewEvent.objects.filter(draft=draft)
            .exclude(text_before="", text_after="", note="")
            .exists()
        )
        # What the stats count stays.
        assert {"status": draft.status, "intent": draft.intent, "decided_at": draft.decided_at} == (
            kept[name]
        )
    assert not Attachment.objects.filter(message=history["sent"].message).exists()
    assert bytes(Outbox.objects.get(draft=history["sent"]).raw) == b""
    assert Outbox.objects.get(draft=history["sent"]).recipient == ""
    assert not Notification.objects.filter(event=Notification.SEND_FAILED).exists()
    assert search.first_matching_ids("Error log", 10) == []
    assert stats_rows(client, carol) == before

    # In work, however old, and handled recently: untouched.
    for name in ("waiting", "approved", "recent"):
        message = Message.objects.get(pk=history[name].message_id)
        assert message.redacted_at is None and message.text
        assert message.thread.customer_address and message.thread.subject
    # Once only.
    assert retention.apply_retention(90).startswith("0 messages")


def test_the_pages_of_a_redacted_email_say_what_happened(history, client, alice):
    retention.apply_retention(90)
    message = Message.objects.get(pk=history["sent"].message_id)
    body = api_for(alice).get(f"/api/v1/messages/{message.pk}").json()
    assert body["redacted_at"] and (body["subject"], body["from_address"], body["text"]) == (
        "",
        "",
        "",
    )
    kept = api_for(alice).get(f"/api/v1/messages/{history['waiting'].message_id}").json()
    assert kept["redacted_at"] is None and kept["subject"]
    client.force_login(alice)
    html = client.get(reverse("draft", args=[history["sent"].pk])).content.decode()
    assert "The content of this email was removed on" in html
    assert "The export limit is lifted" not in html
    queue = client.get(reverse("queue"), {"tab": "sent"})
    assert queue.status_code == 200


def test_the_command_lists_then_redacts(history, capsys):
    call_command("apply_retention", "--days", "90")
    out = capsys.readouterr().out
    assert "4 messages handled more than 90 days ago" in out
    assert "Nothing was changed." in out
    assert not Message.objects.filter(redacted_at__isnull=False).exists()
    call_command("apply_retention", "--days", "90", "--yes")
    assert "4 messages, 3 drafts" in capsys.readouterr().out
    call_command("apply_retention", "--days", "90")
    assert "Nothing was handled more than 90 days ago" in capsys.readouterr().out


def test_without_a_period_nothing_happens(history, settings):
    settings.REPLYHUB_RETENTION_DAYS = 0
    assert retention.apply_retention().startswith("no retention period")
    with pytest.raises(CommandError, match="No retention period"):
        call_command("apply_retention")
    assert not Message.objects.filter(redacted_at__isnull=False).exists()
    settings.REPLYHUB_RETENTION_DAYS = 90
    assert retention.apply_retention().startswith("4 messages")


def test_it_runs_every_night_on_the_io_queue(db):
    [schedule] = Schedule.objects.filter(func="drafts.retention.apply_retention")
    assert schedule.schedule_type == Schedule.DAILY
    assert schedule.cluster == django_settings.REPLYHUB_IO_QUEUE
    assert timezone.localtime(schedule.next_run).hour == 3


def test_a_negative_period_is_refused_by_name():
    env = {**os.environ, "REPLYHUB_RETENTION_DAYS": "-1"}
    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=django_settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    assert "REPLYHUB_RETENTION_DAYS must be 0 (keep for ever) or more, not -1." in done.stderr

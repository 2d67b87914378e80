"""Mail pages: a message, its sandboxed HTML, attachments as downloads, and uploads."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from drafts.ingest import ingest_message
from drafts.models import Attachment, Message
from tests.conftest import DEMO_INBOX, MAIL_DIR, mail_bytes

pytestmark = pytest.mark.django_db


def test_attachments_are_served_only_as_downloads(alice_client, mailbox):
    message, _ = ingest_message(mailbox, mail_bytes("with_attachment.eml"))
    names = sorted(message.attachments.values_list("filename", flat=True))
    assert "日志.txt" in names
    assert all("/" not in n and "<" not in n for n in names)
    html = message.attachments.get(content_type="text/html")
    response = alice_client.get(reverse("attachment", args=[html.pk]))
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment;")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert b"<script>" in response.content  # the file itself, unchanged, not rendered
    page = alice_client.get(reverse("message", args=[message.pk]))
    assert "日志.txt" in page.text


def test_an_attachment_over_the_limit_keeps_only_its_name_and_size(alice_client, mailbox, settings):
    settings.REPLYHUB_MAX_ATTACHMENT_BYTES = 10
    message, _ = ingest_message(mailbox, mail_bytes("with_attachment.eml"))
    big = message.attachments.exclude(size__lte=10).first()
    assert big is not None and not big.stored
    assert alice_client.get(reverse("attachment", args=[big.pk])).status_code == 410


def test_remote_images_load_only_when_asked(alice_client, mailbox):
    message, _ = ingest_message(mailbox, mail_bytes("html_hostile.eml"))
    blocked = alice_client.get(reverse("message_body", args=[message.pk]))
    assert "tracker.example" not in blocked.text
    assert "img-src 'none'" in blocked["Content-Security-Policy"]
    shown = alice_client.get(reverse("message_body", args=[message.pk]) + "?remote=1")
    assert 'src="https://tracker.example/open.gif"' in shown.text
    assert "onerror" not in shown.text
    assert "img-src https: http:" in shown["Content-Security-Policy"]
    assert "script-src" not in shown["Content-Security-Policy"]  # default-src 'none' covers it


def test_auto_replies_are_listed_as_not_drafted(alice_client, mailbox):
    ingest_message(mailbox, mail_bytes("out_of_office.eml"))
    ingest_message(mailbox, mail_bytes("inquiry_en.eml"))
    page = alice_client.get(reverse("not_drafted"))
    assert "Automatic reply: Your ticket #58213" in page.text
    assert "auto-reply" in page.text
    assert "Pricing for Acme CRM" not in page.text


def test_staff_can_upload_eml_and_mbox_files(alice_client, mailbox):
    files = [
        SimpleUploadedFile("inquiry.eml", mail_bytes("inquiry_en.eml")),
        SimpleUploadedFile("inbox.mbox", DEMO_INBOX.read_bytes()),
    ]
    response = alice_client.post(reverse("upload"), {"files": files}, follow=True)
    assert "31 new message(s)" in response.text
    assert Message.objects.count() == 31


def test_an_upload_that_is_not_mail_is_refused_by_its_name(alice_client, mailbox):
    files = [
        SimpleUploadedFile("inquiry.eml", mail_bytes("inquiry_en.eml")),
        SimpleUploadedFile("holiday.png", (MAIL_DIR.parent / "not_mail.png").read_bytes()),
    ]
    response = alice_client.post(reverse("upload"), {"files": files}, follow=True)
    assert "Nothing imported: holiday.png: not an email message" in response.text
    assert Message.objects.count() == 0


def test_uploading_needs_login(client, mailbox):
    files = [SimpleUploadedFile("inquiry.eml", mail_bytes("inquiry_en.eml"))]
    response = client.post(reverse("upload"), {"files": files})
    assert response.status_code == 302
    assert Message.objects.count() == 0
    assert Attachment.objects.count() == 0

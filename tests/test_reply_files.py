"""Files a reviewer attaches to a reply: stored with the draft, sent with the approval."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from drafts import erasure, retention
from drafts.models import Draft, Mailbox, ReplyAttachment, ReviewEvent
from drafts.outbox import Outbox
from drafts.reply_files import MAX_FILES
from drafts.sending import send_outbox
from tests.apiclient import api_for, draft_url
from tests.conftest import make_ready_draft

pytestmark = pytest.mark.django_db

MANUAL = b"%PDF-1.4\n% Acme CRM manual\n"
PRICES = "名称,价格\nAcme CRM,99\n".encode()


def upload(name: str, data: bytes, kind: str = "application/octet-stream") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type=kind)


def attach(client, draft: Draft, *files: SimpleUploadedFile, version: int | None = None, **more):
    data = {"action": "attach", "version": draft.version if version is None else version}
    return client.post(
        reverse("draft_action", args=[draft.pk]),
        {**data, "files": list(files), **more},
        follow=True,
    )


def notices(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_files_are_attached_listed_and_downloadable(alice, alice_client, mailbox):
    draft = make_ready_draft(mailbox)
    response = attach(
        alice_client,
        draft,
        upload("manual.pdf", MANUAL, "application/pdf"),
        upload("../../价格表.csv", PRICES),  # a path is cut off; the type is guessed
    )
    assert notices(response) == ["Attached 2 files to the reply."]
    assert response.redirect_chain[-1][0].endswith("#reply-files")
    files = list(ReplyAttachment.objects.filter(draft=draft))
    assert [(f.filename, f.content_type, f.size) for f in files] == [
        ("manual.pdf", "application/pdf", len(MANUAL)),
        ("价格表.csv", "text/csv", len(PRICES)),
    ]
    assert "Files sent with the reply" in response.text and "价格表.csv" in response.text
    [event] = draft.events.all()
    assert (event.action, event.user, event.note) == (
        ReviewEvent.ATTACH,
        alice,
        "manual.pdf, 价格表.csv",
    )
    assert Draft.objects.get(pk=draft.pk).version == draft.version + 1

    download = alice_client.get(reverse("reply_file", args=[draft.pk, files[1].pk]))
    assert download.content == PRICES
    assert download["Content-Type"] == "application/octet-stream"
    assert download["Content-Disposition"].startswith("attachment;")
    assert download["X-Content-Type-Options"] == "nosniff"


def test_the_approved_reply_carries_the_files(alice, alice_client, mailbox, smtp_server):
    draft = make_ready_draft(mailbox)
    attach(alice_client, draft, upload("manual.pdf", MANUAL, "application/pdf"))
    draft.refresh_from_db()
    text = "Dear Olivia,\n\nThe manual is attached.\n\nAcme Cloud Support Team"
    assert draft.approve(alice, text, draft.version)
    assert send_outbox(Outbox.objects.get(draft=draft).pk) == "sent"
    [(_, sent)] = smtp_server.received
    assert sent.get_content_type() == "multipart/mixed"
    assert "The manual is attached." in sent.get_body(("plain",)).get_content()
    [file] = list(sent.iter_attachments())
    assert (file.get_filename(), file.get_content_type()) == ("manual.pdf", "application/pdf")
    assert file.get_content() == MANUAL
    # Sent: the file stays listed, and can no longer be taken off.
    page = alice_client.get(reverse("draft", args=[draft.pk]))
    assert "manual.pdf" in page.text and 'value="detach"' not in page.text


def test_an_approval_read_before_a_file_was_attached_is_refused(alice, bob, client, mailbox):
    draft = make_ready_draft(mailbox)
    seen = draft.version  # bob opened the draft
    client.force_login(alice)
    attach(client, draft, upload("manual.pdf", MANUAL))
    draft.refresh_from_db()
    assert not draft.approve(bob, draft.reply_text, seen)
    assert Draft.objects.get(pk=draft.pk).status == Draft.READY


def test_nothing_is_attached_while_someone_else_has_the_draft_open(alice, bob, client, mailbox):
    draft = make_ready_draft(mailbox)
    assert draft.claim(alice)
    client.force_login(bob)
    response = attach(client, draft, upload("manual.pdf", MANUAL))
    assert notices(response)[0].startswith("Nothing changed: alice is editing this draft")
    assert not ReplyAttachment.objects.exists()


@pytest.mark.parametrize(
    ("files", "error"),
    [
        ([], "Choose one or more files to attach."),
        ([("empty.txt", b"")], "“empty.txt” is empty; nothing was attached."),
        (
            [("a.bin", b"x" * 600), ("b.bin", b"x" * 600)],
            "“b.bin” (600\xa0bytes) would make the reply's files 1.2\xa0KB in all, over the "
            "1000\xa0bytes a reply may carry; nothing was attached.",
        ),
        (
            [(f"{n}.txt", b"x") for n in range(MAX_FILES + 1)],
            "A reply takes at most 10 files; this one has 0 already.",
        ),
    ],
)
def test_files_over_the_limits_are_refused_by_name(alice_client, mailbox, settings, files, error):
    settings.REPLYHUB_REPLY_FILES_MAX_BYTES = 1000
    draft = make_ready_draft(mailbox)
    response = attach(alice_client, draft, *(upload(name, data) for name, data in files))
    assert notices(response) == [error]
    assert not ReplyAttachment.objects.exists()
    assert Draft.objects.get(pk=draft.pk).version == draft.version


def test_the_reply_being_edited_survives_attaching(alice_client, mailbox):
    draft = make_ready_draft(mailbox)
    typed = "Dear Olivia,\n\nSee the manual.\n\nAcme Cloud Support Team"
    response = attach(alice_client, draft, upload("manual.pdf", MANUAL), reply_text=typed)
    assert response.context["reply_text"] == typed


def test_a_file_is_taken_off_the_reply(alice, alice_client, mailbox):
    draft = make_ready_draft(mailbox)
    attach(alice_client, draft, upload("manual.pdf", MANUAL), upload("old.pdf", MANUAL))
    draft.refresh_from_db()
    old = ReplyAttachment.objects.get(filename="old.pdf")
    response = alice_client.post(
        reverse("draft_action", args=[draft.pk]),
        {"action": "detach", "file": old.pk, "version": draft.version},
        follow=True,
    )
    assert notices(response) == ["The file is taken off the reply."]
    assert list(ReplyAttachment.objects.values_list("filename", flat=True)) == ["manual.pdf"]
    assert [e.action for e in draft.events.all()] == [ReviewEvent.ATTACH, ReviewEvent.DETACH]


def test_another_teams_files_are_out_of_reach(alice_client, mailbox):
    sales = Mailbox.objects.create(name="sales", address="sales@acme.example")
    theirs = make_ready_draft(sales)
    file = ReplyAttachment.objects.create(
        draft=theirs, filename="quote.pdf", content_type="application/pdf", size=3, data=b"pdf"
    )
    assert alice_client.get(reverse("reply_file", args=[theirs.pk, file.pk])).status_code == 404
    mine = make_ready_draft(mailbox, "with_attachment.eml")
    # Another draft's file, asked for under one's own draft: not found either.
    assert alice_client.get(reverse("reply_file", args=[mine.pk, file.pk])).status_code == 404


def test_retention_and_erasure_take_the_files_too(alice, mailbox):
    kept = make_ready_draft(mailbox)
    assert kept.attach(alice, [("manual.pdf", "application/pdf", MANUAL)], None)
    assert kept.reject(alice, "tone")
    retention.redact([kept.message_id])
    assert not ReplyAttachment.objects.exists()

    erased = make_ready_draft(mailbox, "with_attachment.eml")
    assert erased.attach(alice, [("log.txt", "text/plain", b"log")], None)
    found = erasure.plan(erased.message.from_address)
    # The customer's own attachment and the reviewer's file.
    assert found.counts["attachments"] == erased.message.attachments.count() + 1
    erasure.erase(found, "dpo")
    assert not ReplyAttachment.objects.exists()


def test_the_api_lists_the_files(alice, mailbox):
    draft = make_ready_draft(mailbox)
    assert draft.attach(alice, [("manual.pdf", "application/pdf", MANUAL)], None)
    body = api_for(alice).get(draft_url(draft)).json()
    [file] = body["files"]
    assert (file["filename"], file["content_type"], file["size"]) == (
        "manual.pdf",
        "application/pdf",
        len(MANUAL),
    )

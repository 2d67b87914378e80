"""Erasing a customer's data on request: everything from or to the address goes, nothing of
anyone else's does, a record keeps only counts and a hash, and on SQLite the text does not
linger in the database file."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse

from drafts import erasure, search
from drafts.ingest import ingest_message
from drafts.models import (
    Attachment,
    Draft,
    Mailbox,
    Message,
    PromptTemplate,
    ReviewEvent,
    StaffProfile,
    Thread,
)
from drafts.notify import Notification, NotificationChannel
from drafts.outbox import Outbox
from drafts.replay import TemplateReplay
from drafts.sending import send_outbox
from tests.conftest import make_ready_draft

pytestmark = pytest.mark.django_db(transaction=True)


def customer_email(address: str, subject: str, number: int, in_reply_to: str = "") -> bytes:
    thread = f"In-Reply-To: {in_reply_to}\r\nReferences: {in_reply_to}\r\n" if in_reply_to else ""
    return (
        f"From: Zhang Wei <{address}>\r\nTo: support@acme.example\r\nSubject: {subject}\r\n"
        f"Message-ID: <erase-{number}-{address}>\r\n{thread}"
        "Date: Mon, 02 Nov 2026 09:00:00 +0800\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        f"我的订单 ZW-{number} 还没到，电话 13800138000。Xiaoqiao-{address.split('@')[0]}\r\n"
        '--b\r\nContent-Type: text/plain; name="invoice.txt"\r\n'
        'Content-Disposition: attachment; filename="invoice.txt"\r\n\r\n'
        f"Invoice for {address}\r\n--b--\r\n"
    ).encode()


@pytest.fixture
def customer(mailbox, alice, smtp_server):
    """A customer (a fresh address: no other test ever stored it) with two emails in one
    conversation, one answered and sent, one failed to send; and someone else's email."""
    address = f"zhang.wei.{uuid.uuid4().hex[:10]}@example.cn"
    first, _ = ingest_message(mailbox, customer_email(address, "订单未到", 1))
    second, _ = ingest_message(
        mailbox, customer_email(address, "Re: 订单未到", 2, f"<erase-1-{address}>")
    )
    for message in (first, second):
        Draft.objects.filter(message=message).update(
            status=Draft.READY, intent="complaint", generated_text="张伟您好：\n\n已处理。",
            reply_text="张伟您好：\n\n已处理。",
        )  # fmt: skip
    sent = Draft.objects.get(message=first)
    assert sent.approve(alice, "张伟您好：\n\n订单今天发出。")
    assert send_outbox(sent.delivery.pk) == "sent"
    failed = Draft.objects.get(message=second)
    NotificationChannel.objects.create(
        mailbox=mailbox, name="team", kind="webhook", url="http://127.0.0.1:9/hook",
    )  # fmt: skip
    assert failed.approve(alice, "张伟您好：\n\n再次致歉。")
    Outbox.objects.filter(pk=failed.delivery.pk).update(state=Outbox.SENDING, attempts=1)
    Outbox.objects.get(pk=failed.delivery.pk).mark_failed("550 no such user")
    other = make_ready_draft(mailbox, "with_attachment.eml")
    template = PromptTemplate.objects.create(
        name="candidate", system_prompt="s", analysis_prompt="a", reply_prompt="{email}"
    )
    TemplateReplay.objects.create(
        template=template,
        rows=[{"draft": sent.pk, "candidate": "张伟您好"}, {"draft": other.pk, "candidate": "Hi"}],
    )
    return address, first, second, other


def test_listing_changes_nothing(customer, capsys):
    address, first, second, _other = customer
    call_command("erase_customer", address.upper(), "--by", "DPO Li")  # any case
    out = capsys.readouterr().out
    assert f"Stored about {address} in every mailbox:" in out
    for line in ("2 messages received", "1 replies sent", "1 conversations", "2 drafts",
                 "2 attachments", "Nothing was erased."):  # fmt: skip
        assert line in " ".join(out.split())
    assert Message.objects.filter(pk__in=[first.pk, second.pk]).count() == 2
    assert not erasure.Erasure.objects.exists()


def test_erasing_removes_everything_of_the_customer_and_nothing_else(customer, capsys):
    address, first, second, other = customer
    drafts = list(Draft.objects.filter(message__in=[first, second]).values_list("pk", flat=True))
    assert search.first_matching_ids("订单未到", 10)
    call_command("erase_customer", address, "--by", "DPO Li", "--yes")
    assert "Erased. Record" in capsys.readouterr().out

    assert not Message.objects.filter(thread__customer_address=address).exists()
    assert not Message.objects.filter(from_address=address).exists()
    assert not Message.objects.filter(to__icontains=address).exists()  # our reply, too
    assert not Thread.objects.filter(customer_address=address).exists()
    assert not Draft.objects.filter(pk__in=drafts).exists()
    assert not ReviewEvent.objects.filter(draft_id__in=drafts).exists()
    assert not Outbox.objects.filter(recipient=address).exists()
    assert not Attachment.objects.filter(filename="invoice.txt").exists()
    assert not Notification.objects.filter(payload__draft__id__in=drafts).exists()
    assert search.first_matching_ids("订单未到", 10) == []
    [replay] = TemplateReplay.objects.all()
    assert replay.rows == [{"draft": other.pk, "candidate": "Hi"}]
    # Someone else's mail is untouched.
    assert Draft.objects.filter(pk=other.pk).exists()
    assert Attachment.objects.filter(message=other.message).exists()

    [record] = erasure.Erasure.objects.all()
    assert record.requested_by == "DPO Li"
    assert record.address_sha256 == erasure.address_hash(address)
    assert record.counts["messages received"] == 2 and record.counts["drafts"] == 2
    assert record.counts["notifications"] == 1 and record.counts["replay report rows"] == 1
    assert address not in str(record.counts)

    if connection.vendor == "sqlite":  # the bytes are gone from the file, not only the rows
        data = Path(connection.settings_dict["NAME"]).read_bytes()
        wal = Path(connection.settings_dict["NAME"] + "-wal")
        data += wal.read_bytes() if wal.exists() else b""
        assert address.split("@")[0].encode() not in data
        assert address.split(".")[2].split("@")[0].encode() not in data  # as the index has it
        assert "订单未到".encode() not in data


def test_erasing_in_one_mailbox_keeps_the_others(customer, capsys):
    address, first, *_ = customer
    sales = Mailbox.objects.create(name="sales", address="sales@acme.example")
    elsewhere, _ = ingest_message(sales, customer_email(address, "发票", 9))
    call_command("erase_customer", address, "--by", "DPO Li", "--mailbox", "sales", "--yes")
    assert not Message.objects.filter(pk=elsewhere.pk).exists()
    assert Message.objects.filter(pk=first.pk).exists()
    assert erasure.Erasure.objects.get().mailbox == "sales"


def test_bad_input_is_refused_by_name(db):
    with pytest.raises(CommandError, match=re.escape("'not-an-address' is not an email address.")):
        call_command("erase_customer", "not-an-address", "--by", "DPO Li")
    with pytest.raises(CommandError, match=re.escape("No mailbox is called 'nope'.")):
        call_command("erase_customer", "a@example.com", "--by", "x", "--mailbox", "nope")


def test_an_unknown_address_erases_nothing(mailbox, capsys):
    call_command("erase_customer", "nobody@example.com", "--by", "DPO Li", "--yes")
    assert "Nothing is stored about nobody@example.com in every mailbox." in capsys.readouterr().out
    assert not erasure.Erasure.objects.exists()


def test_an_admin_erases_from_the_admin_after_seeing_the_list(customer, client):
    address, first, second, other = customer
    admin = User.objects.create_user("ada", password="x")
    StaffProfile.objects.create(user=admin, role=StaffProfile.ADMIN)
    client.force_login(admin)
    url = reverse("admin:drafts_erasure_add")
    page = client.get(url)
    assert page.status_code == 200
    listed = client.post(url, {"address": address, "requested_by": "ada", "list": "1"})
    html = listed.content.decode()
    assert f"Stored about {address}" in html and 'name="erase"' in html
    assert Message.objects.filter(pk=first.pk).exists()  # listing erased nothing
    done = client.post(url, {"address": address, "requested_by": "ada", "erase": "1"})
    assert done.status_code == 302 and done["Location"].endswith("/admin/drafts/erasure/")
    assert not Message.objects.filter(pk__in=[first.pk, second.pk]).exists()
    assert Message.objects.filter(pk=other.message_id).exists()
    changelist = client.get(done["Location"]).content.decode()
    assert "ada" in changelist and "2 messages received" in changelist
    record = erasure.Erasure.objects.get()
    assert client.post(reverse("admin:drafts_erasure_delete", args=[record.pk])).status_code == 403
    refused = client.post(url, {"address": "nope", "requested_by": "ada", "list": "1"})
    assert "Enter a valid email address." in refused.content.decode()


def test_reviewers_and_supervisors_cannot_erase(customer, client, alice, carol):
    for user in (alice, carol):
        client.force_login(user)
        response = client.get(reverse("admin:drafts_erasure_add"))
        assert response.status_code in (302, 403)


def test_the_erasure_page_is_in_the_admins_language(client, db):
    admin = User.objects.create_user("ada", password="x")
    StaffProfile.objects.create(user=admin, role=StaffProfile.ADMIN, language="zh-hans")
    client.force_login(admin)
    html = client.get(reverse("admin:drafts_erasure_add")).content.decode()
    assert "删除客户的个人信息" in html and "列出将被删除的内容" in html

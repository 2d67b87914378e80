"""End to end through real servers: a customer's email fetched from Dovecot over IMAP, the
approved reply sent by SMTP and delivered into the customer's Dovecot mailbox, read back
over IMAP with its threading headers, and kept in the support mailbox's Sent folder."""

from __future__ import annotations

import imaplib
from collections.abc import Iterator
from datetime import timedelta
from email import policy
from email.parser import BytesParser
from email.utils import format_datetime

import pytest
from aiosmtpd.controller import Controller
from django.urls import reverse
from django.utils import timezone

from drafts import imap
from drafts.models import Draft, Message, Outbox
from drafts.sending import send_outbox
from tests.conftest import free_port, mail_bytes
from tests.dovecot import Dovecot

pytestmark = pytest.mark.django_db

CUSTOMER = "purchasing@northwind.example"  # the Reply-To of inquiry_en.eml
CUSTOMER_PASSWORD = "customer-password-1"


class DeliverToDovecot:
    """The mail server between ReplyHub and the customer: aiosmtpd accepting the message,
    then handing it to the recipient's Dovecot mailbox (as a delivery agent would)."""

    def __init__(self, dovecot: Dovecot) -> None:
        self.dovecot = dovecot

    async def handle_DATA(self, server: object, session: object, envelope) -> str:
        for recipient in envelope.rcpt_tos:
            client = imaplib.IMAP4("127.0.0.1", self.dovecot.port, timeout=10)
            client.login(recipient, CUSTOMER_PASSWORD)
            client.append("INBOX", "", None, envelope.original_content)
            client.logout()
        return "250 2.0.0 delivered"


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    server = Dovecot()
    server.add_user(CUSTOMER, CUSTOMER_PASSWORD)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mta(dovecot, settings) -> Iterator[None]:
    port = free_port()
    controller = Controller(DeliverToDovecot(dovecot), hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    try:
        yield
    finally:
        controller.stop()


def read_inbox(dovecot: Dovecot, user: str, password: str, folder: str = "INBOX") -> list:
    client = imaplib.IMAP4("127.0.0.1", dovecot.port, timeout=10)
    client.login(user, password)
    try:
        client.select(folder, readonly=True)
        _, data = client.fetch("1:*", "(FLAGS BODY.PEEK[])")
        parsed = []
        for item in data:
            if isinstance(item, tuple):
                message = BytesParser(policy=policy.default).parsebytes(item[1])
                parsed.append((item[0], message))
        return parsed
    finally:
        client.logout()


def test_the_reply_reaches_the_customer_threaded_and_stays_in_sent(
    mailbox, dovecot, mta, alice, alice_client, monkeypatch
):
    monkeypatch.setenv("IMAP_PASSWORD", dovecot.password)
    mailbox.imap_host, mailbox.imap_port = "127.0.0.1", dovecot.port
    mailbox.imap_security, mailbox.imap_user = "none", dovecot.user
    mailbox.imap_sent_folder = "Sent"
    mailbox.save()

    # The customer's email arrives and is fetched over IMAP; the model's draft is ready.
    dovecot.deliver(mail_bytes("inquiry_en.eml"))
    imap.fetch_mailbox(mailbox)
    original = Message.objects.get(direction=Message.INBOUND)
    Draft.objects.filter(message=original).update(
        status=Draft.READY, reply_text="Dear Olivia,\n\n25 seats are 99 each.\n\nAcme"
    )
    draft = original.draft
    draft.refresh_from_db()

    # A reviewer approves it in the browser's way (a POST with the version) …
    alice_client.get(reverse("draft", args=[draft.pk]))
    draft.refresh_from_db()
    alice_client.post(
        reverse("draft_action", args=[draft.pk]),
        {"action": "approve", "reply_text": draft.reply_text, "version": draft.version},
    )
    outbox = Outbox.objects.get(draft=draft)
    # … and the worker sends it.
    assert send_outbox(outbox.pk) == "sent"

    [(_, reply)] = read_inbox(dovecot, CUSTOMER, CUSTOMER_PASSWORD)
    assert reply["Message-ID"] == outbox.message_id
    assert reply["In-Reply-To"] == original.message_id
    assert reply["References"] == original.message_id
    assert reply["Subject"] == "Re: Pricing for Acme CRM, 25 seats"
    assert reply["From"] == "Acme Support <support@acme.example>"
    assert reply["To"] == CUSTOMER
    assert "25 seats are 99 each." in reply.get_content()

    [(flags, kept)] = read_inbox(dovecot, dovecot.user, dovecot.password, "Sent")
    assert b"\\Seen" in flags
    assert kept["Message-ID"] == outbox.message_id
    outbox.refresh_from_db()
    assert outbox.copied_to_sent

    # The customer answers our reply: it joins the same thread in ReplyHub.
    answer = (
        f"From: Olivia Brown <{CUSTOMER}>\r\nTo: support@acme.example\r\n"
        "Subject: Re: Pricing for Acme CRM, 25 seats\r\n"
        "Message-ID: <answer-1@northwind.example>\r\n"
        f"In-Reply-To: {outbox.message_id}\r\n"
        f"References: {original.message_id} {outbox.message_id}\r\n"
        f"Date: {format_datetime(timezone.now() + timedelta(minutes=5))}\r\n"
        "\r\nThanks, we will order.\r\n"
    ).encode()
    dovecot.deliver(answer)
    imap.fetch_mailbox(mailbox)
    answered = Message.objects.get(message_id="<answer-1@northwind.example>")
    assert answered.thread_id == original.thread_id
    assert list(
        original.thread.messages.order_by("date", "id").values_list("direction", flat=True)
    ) == [
        "in",
        "out",
        "in",
    ]


def test_a_failed_copy_to_sent_does_not_undo_the_send(mailbox, dovecot, mta, alice, monkeypatch):
    monkeypatch.setenv("IMAP_PASSWORD", "wrong-password")
    mailbox.imap_host, mailbox.imap_port = "127.0.0.1", dovecot.port
    mailbox.imap_security, mailbox.imap_user = "none", dovecot.user
    mailbox.imap_sent_folder = "Sent"
    mailbox.save()
    from tests.conftest import make_ready_draft

    draft = make_ready_draft(mailbox)
    assert draft.approve(alice, "Dear Olivia,\n\nYes.\n\nAcme")
    outbox = Outbox.objects.get(draft=draft)
    assert send_outbox(outbox.pk) == "sent"
    outbox.refresh_from_db()
    assert outbox.state == Outbox.SENT and not outbox.copied_to_sent
    assert len(read_inbox(dovecot, CUSTOMER, CUSTOMER_PASSWORD)) == 1

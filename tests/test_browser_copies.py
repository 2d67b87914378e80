"""Copies (Cc) of a reply in a real browser: the reviewer sees who the reply goes to,
takes one copy off and adds another (kept across a note), and the reply goes out to
exactly those.

As in tests/test_browser.py: Debian's Chromium driven by Playwright, a real SMTP server.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from drafts.models import Draft, Mailbox
from drafts.sending import send_outbox
from tests.conftest import make_ready_draft

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_reviewer_changes_who_gets_a_copy_and_the_reply_goes_to_them(
    visit,
    mailbox,
    alice,
    smtp_server,
):
    Mailbox.objects.create(name="Sales", address="sales@acme.example")
    draft = make_ready_draft(mailbox, "copied_colleagues.eml", language="en")
    page = visit("alice").page
    page.goto(f"/drafts/{draft.pk}/")
    expect(page.locator("#reply-to")).to_have_text("wang.fang@customer.example")
    copies = page.get_by_label("Cc", exact=True)
    expect(copies).to_have_value(
        "li.na@customer.example, zhao.lei@customer.example, zhang.san@partner.example"
    )
    # A typo first: refused by name, the list as typed kept for mending.
    copies.fill("li.na@customer.example, zhao.lei@customer")
    page.get_by_role("button", name="Approve & send").click()
    expect(page.locator(".notice.error")).to_contain_text(
        "“zhao.lei@customer” is not an email address"
    )
    expect(copies).to_have_value("li.na@customer.example, zhao.lei@customer")
    copies.fill("li.na@customer.example, installer@partner.example")
    # A note for the team reloads the page: the copies being edited come back as they were.
    page.locator("#note-text").fill("The installer asked to be copied.")
    page.get_by_role("button", name="Add note").click()
    expect(page.locator(".notice.success")).to_have_text("Note added for the team.")
    expect(copies).to_have_value("li.na@customer.example, installer@partner.example")
    page.get_by_role("button", name="Approve & send").click()
    expect(page.locator(".notice.undo, .notice.success").first).to_be_visible()
    outbox = Draft.objects.get(pk=draft.pk).delivery
    assert send_outbox(outbox.pk) == "sent"
    [(recipients, sent)] = smtp_server.received
    assert recipients == [
        "wang.fang@customer.example",
        "li.na@customer.example",
        "installer@partner.example",
    ]
    assert sent["Cc"] == "li.na@customer.example, installer@partner.example"

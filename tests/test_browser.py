"""The review pages in a real browser: Debian's Chromium driven by Playwright.

Each test is something a reviewer does, checked by what they see. One browser serves the
module; every user gets a fresh context (their own cookies) and logs in through the form.
The test process shares the live server's database, so drafts made here show up there.
"""

from __future__ import annotations

import re
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from drafts.ingest import ingest_message
from drafts.models import Attachment, Draft, Mailbox, SavedReply
from drafts.sending import send_outbox
from drafts.tasks import generate_draft
from tests.apiclient import ScriptedModel
from tests.conftest import mail_bytes, make_ready_draft

pytestmark = pytest.mark.django_db(transaction=True)

XSS_DIR = Path(__file__).parent / "fixtures" / "xss"
PAYLOADS = (XSS_DIR / "payloads.txt").read_text().splitlines()
APPROVED = "Approved, waiting to send"
PRICING = "Pricing for Acme CRM, 25 seats"  # inquiry_en.eml
ERROR_LOG = "Error log from Acme Analytics export"  # with_attachment.eml


def at_draft(draft: Draft) -> re.Pattern[str]:
    return re.compile(rf"/drafts/{draft.pk}/$")


def expect_listed(page: Page, *drafts: Draft) -> None:
    """The queue's table shows exactly these drafts, in this order."""
    rows = page.locator("table.queue tbody tr[data-draft]")
    expect(rows).to_have_count(len(drafts))
    for number, draft in enumerate(drafts):
        expect(rows.nth(number)).to_have_attribute("data-draft", str(draft.pk))


def test_a_reviewer_logs_in_and_filters_the_queue(visit, mailbox, alice):
    english = make_ready_draft(mailbox)
    chinese = make_ready_draft(mailbox, "chinese_gb2312.eml", intent="complaint", language="zh")
    attached = make_ready_draft(mailbox, "with_attachment.eml")
    page = visit("alice").page
    expect(page.locator("header .logout")).to_contain_text("alice")
    expect(page.locator("[data-tab=review] .count")).to_have_text("3")
    expect_listed(page, english, chinese, attached)
    expect(page.get_by_role("link", name=PRICING)).to_be_visible()

    page.locator("form.filters select[name=intent]").select_option("complaint")
    page.get_by_role("button", name="Filter").click()
    expect_listed(page, chinese)
    expect(page.get_by_role("link", name=chinese.message.subject)).to_be_visible()

    page.locator("form.filters select[name=intent]").select_option("")
    search = page.get_by_placeholder("Search subject, sender, text")
    search.fill("Pricing for Acme")
    page.get_by_role("button", name="Filter").click()
    expect_listed(page, english)
    expect(search).to_have_value("Pricing for Acme")

    search.fill("fabrikam")  # the sender's domain
    search.press("Enter")
    expect_listed(page, attached)
    search.fill("nothing-like-this-anywhere")
    search.press("Enter")
    expect(page.locator("table.queue td.empty")).to_have_text("Nothing here.")


def test_a_reviewer_edits_and_approves_then_rejects_with_a_reason(visit, mailbox, alice):
    first = make_ready_draft(mailbox)
    second = make_ready_draft(mailbox, "with_attachment.eml")
    page = visit("alice").page
    page.get_by_role("link", name=PRICING).click()
    expect(page).to_have_url(at_draft(first))
    edited = "Dear Olivia,\n\nThe Professional plan includes the API.\n\nAcme Cloud Support Team"
    page.locator("form.review textarea").fill(edited)
    page.get_by_role("button", name="Approve & send").click()
    # On to the next draft awaiting review, with the news about the first.
    expect(page).to_have_url(at_draft(second))
    expect(page.locator(".notice.success")).to_have_text("Approved. The reply is being sent.")

    page.goto(f"/drafts/{first.pk}/")
    expect(page.locator(".draft-head .status")).to_have_text(APPROVED)
    expect(page.locator("form.review textarea")).to_have_value(edited)
    expect(page.locator("form.review textarea")).not_to_be_editable()
    expect(page.locator("ol.history")).to_contain_text("Approved by alice")
    page.goto("/")
    expect_listed(page, second)

    page.get_by_role("link", name=ERROR_LOG).click()
    page.locator("form.reject select[name=reason]").select_option(label="Wrong or invented facts")
    page.get_by_placeholder("Note (optional)").fill("The export limit is 10,000 rows.")
    page.get_by_role("button", name="Reject").click()
    expect(page.locator(".notice.success")).to_have_text("Draft rejected.")
    expect(page.locator(".draft-head .status")).to_have_text("Rejected")
    expect(page.locator("ol.history")).to_contain_text(
        "Rejected by alice — Wrong or invented facts: The export limit is 10,000 rows."
    )
    page.goto("/")
    expect(page.locator("table.queue td.empty")).to_have_text("Nothing here.")
    expect(page.locator("[data-tab=rejected] .count")).to_have_text("1")


def test_a_reviewer_undoes_an_approval_from_the_next_draft(visit, mailbox, alice, settings):
    settings.REPLYHUB_UNDO_SECONDS = 60
    first = make_ready_draft(mailbox)
    second = make_ready_draft(mailbox, "with_attachment.eml")
    page = visit("alice").page
    page.goto(f"/drafts/{first.pk}/")
    edited = "Dear Olivia,\n\nThe Professional plan includes the API.\n\nAcme Cloud Support Team"
    page.locator("form.review textarea").fill(edited)
    page.get_by_role("button", name="Approve & send").click()
    expect(page).to_have_url(at_draft(second))
    banner = page.locator("form.undo")
    expect(banner).to_contain_text(f"Approved: the reply to “{PRICING}” goes out at")
    expect(banner.locator(".countdown")).to_have_text(re.compile(r"^\((5\d|60) s\)$"))
    banner.get_by_role("button", name="Undo").click()
    # Back at the first draft, in review again, with the text as it was approved.
    expect(page).to_have_url(at_draft(first))
    expect(page.locator(".notice.success")).to_contain_text("Not sent: the approval is undone.")
    expect(page.locator(".draft-head .status")).to_have_text("Awaiting review")
    expect(page.locator("form.review textarea")).to_have_value(edited)
    expect(page.locator("form.review textarea")).to_be_editable()
    expect(page.locator("form.undo")).to_have_count(0)
    expect(page.locator("ol.history")).to_contain_text("Approval undone before sending by alice")

    # z undoes too; the banner leaves by itself when the window closes.
    page.get_by_role("button", name="Approve & send").click()
    expect(page.locator("form.undo")).to_have_count(1)
    page.keyboard.press("z")
    expect(page).to_have_url(at_draft(first))
    expect(page.locator(".draft-head .status")).to_have_text("Awaiting review")
    settings.REPLYHUB_UNDO_SECONDS = 2
    page.get_by_role("button", name="Approve & send").click()
    expect(page.locator("form.undo")).to_have_count(1)
    expect(page.locator("form.undo")).to_have_count(0, timeout=5000)
    assert Draft.objects.get(pk=first.pk).status == Draft.APPROVED


def test_keyboard_shortcuts_on_the_draft_page(visit, mailbox, alice):
    first = make_ready_draft(mailbox)
    middle = make_ready_draft(mailbox, "chinese_gb2312.eml")
    last = make_ready_draft(mailbox, "with_attachment.eml")
    page = visit("alice").page
    page.goto(f"/drafts/{middle.pk}/")
    keys = page.keyboard

    keys.press("?")
    shortcuts = page.locator("dialog#shortcuts")
    expect(shortcuts).to_be_visible()
    expect(shortcuts).to_contain_text("approve & send")
    keys.press("Escape")
    expect(shortcuts).to_be_hidden()

    reply = page.locator("form.review textarea")
    keys.press("e")
    expect(reply).to_be_focused()
    keys.type("jk")  # typed into the reply, not taken as shortcuts
    expect(reply).to_have_value(re.compile("jk"))
    expect(page).to_have_url(at_draft(middle))
    keys.press("Escape")
    expect(reply).not_to_be_focused()

    keys.press("j")
    expect(page).to_have_url(at_draft(last))
    keys.press("k")
    expect(page).to_have_url(at_draft(middle))
    keys.press("r")
    expect(page.locator("form.reject select[name=reason]")).to_be_focused()
    keys.press("Escape")
    keys.press("a")
    expect(page).to_have_url(at_draft(last))
    expect(page.locator(".notice.success")).to_have_text("Approved. The reply is being sent.")
    page.goto(f"/drafts/{middle.pk}/")
    expect(page.locator(".draft-head .status")).to_have_text(APPROVED)
    assert Draft.objects.get(pk=first.pk).status == Draft.READY


def test_a_second_reviewer_cannot_approve_a_draft_someone_has_open(visit, mailbox, alice, bob):
    draft = make_ready_draft(mailbox)
    alices = visit("alice").page
    alices.goto(f"/drafts/{draft.pk}/")
    expect(alices.locator(".draft-head .status")).to_have_text("Awaiting review")
    expect(alices.locator("#claim-banner")).to_have_count(0)

    bobs = visit("bob").page
    bobs.goto(f"/drafts/{draft.pk}/")
    expect(bobs.locator("#claim-banner")).to_contain_text("alice is editing this draft")
    bobs.locator("form.review textarea").fill("Bob's answer")
    bobs.get_by_role("button", name="Approve & send").click()
    expect(bobs.locator(".notice.error")).to_contain_text(
        "Nothing changed: alice is editing this draft"
    )
    expect(bobs.locator("#unsaved-text")).to_have_text("Bob's answer")
    expect(bobs.locator(".draft-head .status")).to_have_text("Awaiting review")

    alices.get_by_role("button", name="Approve & send").click()
    expect(alices.locator(".notice.success")).to_have_text("Approved. The reply is being sent.")
    bobs.reload()
    expect(bobs.locator(".draft-head .status")).to_have_text(APPROVED)
    expect(bobs.locator("#claim-banner")).to_have_count(0)
    expect(bobs.locator("form.review textarea")).to_have_value(draft.reply_text)


def test_a_reviewer_keeps_the_draft_after_saving_an_edit(visit, mailbox, alice, bob):
    draft = make_ready_draft(mailbox)
    bobs = visit("bob").page
    alices = visit("alice").page
    alices.goto(f"/drafts/{draft.pk}/")
    alices.locator("form.review textarea").fill("An edit, and alice is still working on it")
    alices.get_by_role("button", name="Save edit").click()
    expect(alices.locator(".notice.success")).to_have_text("Edit saved.")
    alices.wait_for_timeout(1_000)  # the beacon, if any, has arrived by now

    bobs.goto(f"/drafts/{draft.pk}/")
    assert "alice is editing this draft" in bobs.locator(".card.draft").inner_text()


def test_a_stale_edit_from_a_second_tab_never_overwrites_the_first(visit, mailbox, alice):
    draft = make_ready_draft(mailbox)
    alice_ = visit("alice")
    one, two = alice_.page, alice_.new_tab()
    one.goto(f"/drafts/{draft.pk}/")
    two.goto(f"/drafts/{draft.pk}/")

    one.locator("form.review textarea").fill("First edit")
    one.get_by_role("button", name="Save edit").click()
    expect(one.locator(".notice.success")).to_have_text("Edit saved.")

    two.locator("form.review textarea").fill("Edit of the old text")
    two.get_by_role("button", name="Save edit").click()
    expect(two.locator(".notice.error")).to_contain_text(
        "someone else changed this draft after you opened it"
    )
    expect(two.locator("form.review textarea")).to_have_value("First edit")
    expect(two.locator("#unsaved-text")).to_have_text("Edit of the old text")
    one.reload()
    expect(one.locator("form.review textarea")).to_have_value("First edit")


def test_the_queue_shows_new_drafts_without_a_reload(visit, mailbox, alice):
    first = make_ready_draft(mailbox)
    page = visit("alice").page
    # The page polls every 15 s; a fake clock makes those seconds pass at once.
    page.clock.install()
    page.goto("/")
    expect_listed(page, first)
    page.evaluate("window.__sameDocument = true")

    arrived = make_ready_draft(mailbox, "with_attachment.eml")
    page.clock.run_for(16_000)
    expect_listed(page, first, arrived)
    expect(page.get_by_role("link", name=ERROR_LOG)).to_be_visible()
    expect(page.locator("[data-tab=review] .count")).to_have_text("2")
    assert page.evaluate("window.__sameDocument") is True


def test_a_reviewer_rejects_several_drafts_at_once_and_takes_it_back(visit, mailbox, alice):
    first = make_ready_draft(mailbox)
    second = make_ready_draft(mailbox, "with_attachment.eml")
    page = visit("alice").page
    page.clock.install()
    page.goto("/")
    count = page.locator("#bulk-count")
    reject = page.get_by_role("button", name="Reject selected")
    expect(count).to_have_text("Tick drafts to act on several at once.")
    expect(reject).to_be_disabled()
    page.get_by_label("Select all on this page").check()
    expect(count).to_have_text("2 selected:")
    page.get_by_label(f"Select {PRICING}").uncheck()
    expect(count).to_have_text("1 selected:")
    expect(page.get_by_label("Select all on this page")).not_to_be_checked()
    # A draft arriving meanwhile does not reshuffle the rows under the reviewer's ticks.
    third = make_ready_draft(mailbox, "chinese_gb2312.eml")
    page.clock.run_for(16_000)
    expect_listed(page, first, second)
    page.get_by_label(f"Select {PRICING}").check()
    page.locator("#bulk select[name=reason]").select_option(label="No reply needed")
    page.locator("#bulk input[name=note]").fill("Newsletter replies")
    reject.click()
    expect(page.locator(".notice.success")).to_have_text("Rejected 2 drafts.")
    expect_listed(page, third)
    expect(page.locator("[data-tab=rejected] .count")).to_have_text("2")

    page.get_by_role("button", name="Take the rejections back").click()
    expect(page.locator(".notice.success")).to_have_text("2 drafts are back in review.")
    expect_listed(page, first, second, third)
    page.goto(f"/drafts/{first.pk}/")
    expect(page.locator("ol.history")).to_contain_text("Rejection taken back by alice")


def test_a_reviewer_inserts_saved_replies_from_the_keyboard(visit, mailbox, alice):
    refunds = SavedReply.objects.create(
        title="Refund procedure", text="Refunds for order {order_number} take 3 working days."
    )
    hours = SavedReply.objects.create(title="Opening hours", text="We are open 9:00-18:00.")
    order = {"value": "A-1042", "source": "pattern", "span": None, "verified": True}
    draft = make_ready_draft(mailbox, fields={"order_numbers": [order]})
    page = visit("alice").page
    page.goto(f"/drafts/{draft.pk}/")
    editor = page.locator("form.review textarea")
    page.keyboard.press("i")
    search = page.get_by_placeholder("Search saved replies")
    expect(search).to_be_focused()
    search.fill("refund")
    expect(page.locator("#saved-list li:visible")).to_have_count(1)
    counted = "**/saved-replies/*/used/"  # each insertion is counted for the admins
    with page.expect_response(counted):
        search.press("Enter")  # the first match, as a paragraph before the sign-off
    expect(editor).to_have_value(
        "Dear Olivia Brown,\n\nThank you for your interest.\n\n"
        "Refunds for order A-1042 take 3 working days.\n\nAcme Cloud Support Team"
    )
    expect(editor).to_be_focused()
    expect(page).to_have_url(at_draft(draft))  # Enter did not submit the reply

    # Then one at the cursor, chosen with the mouse.
    editor.press("Control+Home")
    for _ in range(2):
        editor.press("ArrowDown")
    editor.press("End")
    editor.type(" ")
    page.locator("#saved-replies summary").click()
    with page.expect_response(counted):
        page.get_by_role("button", name=re.compile("Opening hours")).click()
    expect(editor).to_have_value(
        "Dear Olivia Brown,\n\nThank you for your interest. We are open 9:00-18:00.\n\n"
        "Refunds for order A-1042 take 3 working days.\n\nAcme Cloud Support Team"
    )
    assert [SavedReply.objects.get(pk=s.pk).uses for s in (refunds, hours)] == [1, 1]
    page.get_by_role("button", name="Approve & send").click()
    expect(page.locator(".notice.undo, .notice.success").first).to_be_visible()
    assert "We are open 9:00-18:00." in Draft.objects.get(pk=draft.pk).reply_text


def test_a_note_for_the_team_keeps_the_reply_being_written(visit, mailbox, alice):
    draft = make_ready_draft(mailbox)
    page = visit("alice").page
    page.goto(f"/drafts/{draft.pk}/")
    editor = page.locator("form.review textarea")
    editor.fill("Dear Olivia,\n\nHalf-written answer\n\nAcme Cloud Support Team")
    editor.press("Escape")
    page.keyboard.press("n")
    note = page.get_by_label("Note for the team (never sent to the customer)")
    expect(note).to_be_focused()
    note.fill("Asked finance about the discount.")
    page.get_by_role("button", name="Add note").click()
    expect(page.locator(".notice.success")).to_have_text("Note added for the team.")
    expect(page.locator("ol.history")).to_contain_text(
        "Note for the team by alice — Asked finance about the discount."
    )
    expect(editor).to_have_value("Dear Olivia,\n\nHalf-written answer\n\nAcme Cloud Support Team")
    assert Draft.objects.get(pk=draft.pk).reply_text == draft.reply_text  # not saved by it


def test_a_reviewer_asks_the_model_to_rewrite_the_reply_being_edited(visit, mailbox, alice):
    draft = make_ready_draft(mailbox)
    page = visit("alice").page
    page.goto(f"/drafts/{draft.pk}/")
    edited = "Dear Olivia,\n\nA long answer about seats and prices.\n\nAcme Cloud Support Team"
    page.locator("form.review textarea").fill(edited)
    page.get_by_text("Regenerate or reassign").click()
    page.get_by_role("button", name="shorter").click()
    page.get_by_role("button", name="more formal").click()
    expect(page.get_by_label("What should change?")).to_have_value("shorter; more formal")
    page.get_by_role("button", name="Regenerate", exact=True).click()
    expect(page.locator(".notice.success")).to_have_text("Queued for the model again.")
    draft.refresh_from_db()
    assert draft.status == Draft.QUEUED
    assert draft.generation["requested"]["instruction"] == "shorter; more formal"
    assert draft.generation["requested"]["revise"] == edited  # the unsaved edit, rewritten

    # From the keyboard: w, type what should change, Enter.
    other = make_ready_draft(mailbox, "with_attachment.eml")
    page.goto(f"/drafts/{other.pk}/")
    page.keyboard.press("w")
    field = page.get_by_label("What should change?")
    expect(field).to_be_focused()
    field.type("mention the log file we received")
    field.press("Enter")
    expect(page.locator(".notice.success")).to_have_text("Queued for the model again.")
    other.refresh_from_db()
    assert other.generation["requested"]["instruction"] == "mention the log file we received"


def test_the_page_shows_the_rewrite_once_the_model_has_written_it(
    visit, mailbox, alice, monkeypatch, settings, default_template
):
    waiting = ingest_message(mailbox, mail_bytes("with_attachment.eml"))[0].draft
    draft = make_ready_draft(mailbox)
    page = visit("alice").page
    page.goto(f"/drafts/{draft.pk}/")
    page.keyboard.press("w")
    page.get_by_label("What should change?").type("shorter")
    page.get_by_label("What should change?").press("Enter")
    # The email queued earlier waits: someone is waiting for this one.
    expect(page.locator("#progress")).to_contain_text("Waiting for the model: this draft is next.")
    expect(page.locator("form.review textarea")).to_have_attribute("readonly", "")

    settings.REPLYHUB_BATCH_SIZE = 1
    monkeypatch.setattr("drafts.tasks.configured_backend", ScriptedModel)
    assert generate_draft(waiting.pk) == "ready: 1"  # the first task in the queue
    # No reload by the reviewer: the page notices and shows the rewritten draft.
    expect(page.locator(".rewritten")).to_have_text("Rewritten as asked: “shorter”", timeout=10_000)
    expect(page.locator("form.review textarea")).to_have_value(re.compile("sorry about the outage"))
    expect(page.locator("form.review textarea")).not_to_have_attribute("readonly", "")
    expect(page.locator("#progress")).to_have_count(0)
    assert Draft.objects.get(pk=waiting.pk).status == Draft.QUEUED


def test_a_reviewer_attaches_a_file_and_it_goes_with_the_reply(
    visit, mailbox, alice, smtp_server, tmp_path
):
    manual = tmp_path / "Acme CRM 手册.pdf"
    manual.write_bytes(b"%PDF-1.4\n% manual\n")
    draft = make_ready_draft(mailbox)
    page = visit("alice").page
    page.goto(f"/drafts/{draft.pk}/")
    editor = page.locator("form.review textarea")
    editor.fill("Dear Olivia,\n\nThe manual is attached.\n\nAcme Cloud Support Team")
    page.get_by_label("Files to attach").set_input_files(manual)
    page.get_by_role("button", name="Attach", exact=True).click()
    expect(page.locator(".notice.success")).to_have_text("Attached 1 file to the reply.")
    expect(page.locator("#reply-files li")).to_have_count(1)
    expect(page.locator("#reply-files li a")).to_have_text("Acme CRM 手册.pdf")
    # The text typed before attaching is still there, and goes out with the file.
    expect(editor).to_have_value(
        "Dear Olivia,\n\nThe manual is attached.\n\nAcme Cloud Support Team"
    )
    page.get_by_role("button", name="Approve & send").click()
    expect(page.locator(".notice.undo, .notice.success").first).to_be_visible()
    outbox = Draft.objects.get(pk=draft.pk).delivery
    assert send_outbox(outbox.pk) == "sent"
    [(_, sent)] = smtp_server.received
    [file] = list(sent.iter_attachments())
    assert (file.get_filename(), file.get_content()) == ("Acme CRM 手册.pdf", manual.read_bytes())


def hostile_email() -> bytes:
    """An email with the XSS corpus in its subject, sender, HTML and attachment names."""
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = Address(" ".join(PAYLOADS[:6]), addr_spec="mallory@evil.example")
    message["To"] = "Acme Support <support@acme.example>"
    message["Subject"] = " ".join(PAYLOADS)
    message["Date"] = format_datetime(timezone.now())
    message["Message-ID"] = make_msgid(domain="evil.example")
    message.set_content("\n".join(PAYLOADS))
    message.add_alternative((XSS_DIR / "body.html").read_text(), subtype="html")
    for number, payload in enumerate(p for p in PAYLOADS if "/" not in p):
        message.add_attachment(
            b"%PDF-1.4\n", "application", "pdf", filename=f"{payload} {number}.pdf"
        )
    return message.as_bytes()


def hostile_draft(mailbox: Mailbox) -> Draft:
    message, _ = ingest_message(mailbox, hostile_email())
    # Ingestion already defuses file names; the page must be safe even if it did not.
    attachment = Attachment.objects.filter(message=message).first()
    Attachment.objects.filter(pk=attachment.pk).update(filename=PAYLOADS[2] + ".pdf")
    fields = {
        "customer_name": [
            {"value": payload, "source": payload, "span": None, "verified": False}
            for payload in PAYLOADS
        ],
        PAYLOADS[0]: [{"value": "x", "source": PAYLOADS[1], "span": None, "verified": True}],
    }
    Draft.objects.filter(message=message).update(
        status=Draft.READY,
        intent="inquiry",
        confidence=0.5,
        language="en",
        ready_at=timezone.now(),
        flags=PAYLOADS[:3],
        generated_text="\n".join(PAYLOADS),
        reply_text="\n".join(PAYLOADS),
        fields=fields,
    )
    return Draft.objects.select_related("message").get(message=message)


def test_hostile_mail_runs_nothing_and_loads_nothing_from_elsewhere(visit, mailbox, alice):
    draft = hostile_draft(mailbox)
    visitor = visit("alice")
    page = visitor.page
    for url in ("/", f"/drafts/{draft.pk}/", f"/messages/{draft.message_id}/"):
        page.goto(url, wait_until="load")  # "load" waits for the email's frame too
        page.wait_for_timeout(200)  # let anything that was going to fire, fire
        for frame in page.frames:
            assert frame.evaluate("typeof window.__xss") == "undefined", (url, frame.url)
            assert frame.locator('[href^="javascript:" i], [src^="javascript:" i]').count() == 0
        # The payloads are shown as the text they are: nothing rendered, nothing evaluated.
        expect(page.get_by_text("<script>window.__xss=1</script>").first).to_be_visible()
    expect(page.locator(".draft-head h1")).to_contain_text("{{7*7}}")
    page.goto(f"/drafts/{draft.pk}/")
    expect(page.locator("form.review textarea")).to_have_value("\n".join(PAYLOADS))
    expect(page.locator("table.fields")).to_contain_text(PAYLOADS[4])
    expect(page.locator("ul.attachments")).to_contain_text(PAYLOADS[2] + ".pdf")
    frame = page.frame_locator("iframe.email-html")
    expect(frame.get_by_text("Hello, please see my order below.")).to_be_visible()
    assert visitor.dialogs == []
    assert any(url.endswith(f"/messages/{draft.message_id}/body.html") for url in visitor.requests)
    assert visitor.foreign_requests() == []


def test_a_reviewer_switches_the_interface_to_chinese_and_it_stays(visit, mailbox, alice):
    make_ready_draft(mailbox)
    visitor = visit("alice")
    page = visitor.page
    expect(page.locator("header nav")).to_contain_text("Queue")
    page.get_by_label("Interface language").select_option("zh-hans")
    page.get_by_role("button", name="Switch").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    expect(page.locator("header nav")).to_contain_text("审核队列")
    expect(page.locator("[data-tab=review]")).to_contain_text("待审核")
    expect(page.get_by_placeholder("搜索主题、发件人、正文")).to_be_visible()
    expect(page.get_by_role("link", name=PRICING)).to_be_visible()  # the mail itself is as sent

    # The choice belongs to the user, not the browser: a fresh English browser gets Chinese.
    page.get_by_role("button", name="退出登录").click()
    again = visit("alice").page
    expect(again.locator("header nav")).to_contain_text("审核队列")
    again.get_by_label("界面语言").select_option("en")
    again.get_by_role("button", name="切换").click()
    expect(again.locator("header nav")).to_contain_text("Queue")
    expect(again.locator("html")).to_have_attribute("lang", "en")


def test_an_extracted_field_shows_where_the_email_says_it(visit, mailbox, alice):
    fields = {
        "customer_name": [
            {"value": "Olivia Brown", "source": "header", "span": [0, 12], "verified": True}
        ],
        "key_dates": [
            {
                "value": "December 15",
                "source": "pattern",
                "span": [0, 11],
                "verified": True,
                "normalized": "2026-12-15",
            }
        ],
        "product": [{"value": "Acme ERP", "source": "model", "span": None, "verified": False}],
    }
    draft = make_ready_draft(mailbox, fields=fields)
    page = visit("alice").page
    page.goto(f"/drafts/{draft.pk}/")
    date = page.locator("table.fields a.field", has_text="December 15")
    expect(date).to_have_attribute("title", re.compile("exact pattern · 2026-12-15"))
    mark = page.locator("pre.email-text mark#source-key_dates-0")
    expect(mark).to_have_text("December 15")
    date.click()
    expect(mark).to_have_class(re.compile("flash"))
    expect(mark).to_be_in_viewport()
    page.locator("table.fields a.field", has_text="Olivia Brown").hover()
    expect(page.locator("mark#source-customer_name-0")).to_have_class(re.compile("active"))
    # A value the email does not contain is shown as unverified and marks nothing.
    expect(page.locator("table.fields span.field.unverified")).to_have_text("Acme ERP")
    expect(page.locator("pre.email-text mark")).to_have_count(2)


def test_a_supervisor_sees_the_stats_charts_without_errors(visit, mailbox, alice, carol):
    make_ready_draft(mailbox).approve(alice, "Dear Olivia Brown,\n\nDone.\n\nAcme")
    make_ready_draft(mailbox, "chinese_gb2312.eml").reject(alice, "tone")
    visitor = visit("carol")
    page = visitor.page
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto("/stats/")
    trend = page.locator("svg.chart.trend")
    expect(trend).to_be_visible()
    expect(trend).to_have_attribute("role", "img")
    expect(page.locator("#by-reviewer svg.chart")).to_be_visible()
    expect(page.locator("table[data-table=reviewer] td.label")).to_have_text("alice")
    expect(page.get_by_role("link", name="Download as CSV")).to_have_count(5)
    assert problems == []
    assert visitor.foreign_requests() == []

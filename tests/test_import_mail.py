"""Importing .eml files, folders and mbox files: everything stored once, drafts queued."""

from __future__ import annotations

import shutil

import pytest
from django.core.management import CommandError, call_command

from drafts.ingest import ingest_message
from drafts.models import Draft, Message, Thread
from tests.conftest import DEMO_INBOX, MAIL_DIR, mail_bytes

pytestmark = pytest.mark.django_db


def test_it_imports_the_demo_inbox(mailbox, capsys):
    call_command("import_mail", str(DEMO_INBOX))
    assert Message.objects.count() == 30
    assert Draft.objects.count() == 28
    assert set(Draft.objects.values_list("status", flat=True)) == {Draft.QUEUED}
    out = capsys.readouterr().out
    assert "100%" in out
    assert "30 new message(s)" in out


def test_importing_the_same_mbox_twice_adds_nothing(mailbox, capsys):
    call_command("import_mail", str(DEMO_INBOX))
    call_command("import_mail", str(DEMO_INBOX))
    assert Message.objects.count() == 30
    assert Draft.objects.count() == 28
    assert "0 new message(s), 30 already stored" in capsys.readouterr().out


def test_auto_replies_and_bulk_mail_are_stored_without_a_draft(mailbox):
    call_command("import_mail", str(DEMO_INBOX))
    kinds = dict(Message.objects.exclude(auto_kind="").values_list("auto_kind", "subject"))
    assert set(kinds) == {"auto-reply", "bulk"}
    assert not Draft.objects.filter(message__auto_kind__gt="").exists()


def test_it_imports_a_folder_of_eml_files(mailbox, tmp_path):
    for name in ("inquiry_en.eml", "chinese_gb2312.eml", "out_of_office.eml"):
        shutil.copy(MAIL_DIR / name, tmp_path / name)
    call_command("import_mail", str(tmp_path))
    assert Message.objects.count() == 3
    assert Draft.objects.count() == 2
    chinese = Message.objects.get(message_id="<fixture-zh-1@huaxin.example>")
    assert chinese.subject == "询问一下价格"
    assert chinese.from_name == "李娜"
    assert "艾克美客服云" in chinese.text


def test_a_file_that_is_not_mail_is_refused_by_name_and_nothing_is_imported(mailbox, tmp_path):
    shutil.copy(MAIL_DIR / "inquiry_en.eml", tmp_path / "a.eml")
    shutil.copy(MAIL_DIR.parent / "not_mail.png", tmp_path / "b.png")
    with pytest.raises(CommandError) as raised:
        call_command("import_mail", str(tmp_path))
    assert "b.png" in str(raised.value)
    assert "not an email" in str(raised.value)
    assert Message.objects.count() == 0


def test_a_missing_path_is_refused_by_name(mailbox, tmp_path):
    with pytest.raises(CommandError, match=r"nowhere\.mbox: no such file"):
        call_command("import_mail", str(tmp_path / "nowhere.mbox"))


def test_raw_bytes_are_kept_unchanged(mailbox):
    raw = mail_bytes("inquiry_en.eml")
    message, created = ingest_message(mailbox, raw)
    assert created
    assert bytes(message.raw) == raw
    assert message.reply_address == "purchasing@northwind.example"


def test_a_reply_joins_the_customers_thread(mailbox):
    first, _ = ingest_message(mailbox, mail_bytes("inquiry_en.eml"))
    reply, _ = ingest_message(mailbox, mail_bytes("reply_in_thread.eml"))
    assert reply.thread_id == first.thread_id
    assert Thread.objects.count() == 1


def test_a_forged_reference_cannot_join_another_customers_thread(mailbox):
    first, _ = ingest_message(mailbox, mail_bytes("inquiry_en.eml"))
    forged, _ = ingest_message(mailbox, mail_bytes("forged_reference.eml"))
    assert forged.thread_id != first.thread_id


def test_in_one_mbox_a_reply_joins_the_thread_stored_just_before_it(mailbox, tmp_path):
    """A batch reads the messages its mail refers to at once; the ones it stores itself
    count as soon as they are stored, and a forged reference still joins nothing."""
    mbox = tmp_path / "inbox.mbox"
    names = ["inquiry_en.eml", "forged_reference.eml", "reply_in_thread.eml"]
    mbox.write_bytes(
        b"".join(b"From someone Tue Nov 17 12:00:00 2026\n" + mail_bytes(n) + b"\n" for n in names)
    )
    call_command("import_mail", str(mbox))
    first, forged, reply = (
        Message.objects.get(message_id=f"<fixture-{n}>")
        for n in (
            "inquiry-1@northwind.example",
            "forged-1@evil.example",
            "inquiry-2@northwind.example",
        )
    )
    assert reply.thread_id == first.thread_id != forged.thread_id
    assert Thread.objects.count() == 2
    # The thread's latest message is the reply's, as stored after the first.
    assert first.thread.last_message_at == reply.date


def test_html_is_sanitized_and_text_derived_from_it(mailbox):
    message, _ = ingest_message(mailbox, mail_bytes("newsletter.eml"))
    assert "<script" not in message.html
    assert "tracker.example" not in message.html
    assert "Our new features." in message.text


def test_two_different_messages_with_one_message_id_are_both_kept_and_flagged(mailbox):
    first, _ = ingest_message(mailbox, mail_bytes("inquiry_en.eml"))
    changed = mail_bytes("inquiry_en.eml").replace(b"25 people", b"30 people")
    second, created = ingest_message(mailbox, changed)
    assert created
    assert first.message_id == second.message_id
    assert f"duplicate Message-ID: also used by message(s) [{first.pk}]" in second.defects
    assert Draft.objects.count() == 2


def test_drafts_per_sender_are_rate_limited(mailbox, settings):
    settings.REPLYHUB_SENDER_DRAFTS_PER_HOUR = 2
    raw = mail_bytes("out_of_office.eml").replace(b"Auto-Submitted: auto-replied\n", b"")
    for n in range(4):
        ingest_message(mailbox, raw.replace(b"fixture-ooo-1", f"loop-{n}".encode()))
    kinds = list(Message.objects.order_by("id").values_list("auto_kind", flat=True))
    assert kinds == ["", "", "rate-limited", "rate-limited"]
    assert Draft.objects.count() == 2


def test_an_oversize_message_is_kept_raw_and_flagged_without_a_draft(mailbox, settings):
    settings.REPLYHUB_MAX_MESSAGE_BYTES = 200
    raw = mail_bytes("inquiry_en.eml")
    message, created = ingest_message(mailbox, raw)
    assert created
    assert bytes(message.raw) == raw
    assert message.auto_kind == "oversize"
    assert not Draft.objects.exists()


def test_a_piece_of_an_mbox_that_is_not_mail_is_skipped_and_the_rest_imported(
    mailbox, tmp_path, capsys
):
    mbox = tmp_path / "broken.mbox"
    mbox.write_bytes(
        b"From a@b Thu Jan  1 00:00:00 2026\n"
        + mail_bytes("inquiry_en.eml")
        + b"\nFrom x@y Thu Jan  1 00:00:00 2026\n\x89PNG binary garbage\n"
        + b"\nFrom c@d Thu Jan  1 00:00:00 2026\n"
        + mail_bytes("chinese_gb2312.eml")
    )
    call_command("import_mail", str(mbox))
    assert Message.objects.count() == 2
    assert "1 piece(s) of mbox skipped as not mail" in capsys.readouterr().out


def test_batches_are_bounded_by_count_and_by_bytes(monkeypatch):
    from drafts import ingest

    monkeypatch.setattr(ingest, "BATCH_SIZE", 3)
    monkeypatch.setattr(ingest, "BATCH_BYTES", 100)
    small = [(b"x" * 10, n) for n in range(7)]
    assert [len(b) for b in ingest._batches(iter(small))] == [3, 3, 1]
    big = [(b"x" * 60, n) for n in range(3)]
    assert [len(b) for b in ingest._batches(iter(big))] == [2, 1]


@pytest.mark.parametrize(
    "prefix", ["Re: ", "RE: ", "回复：", "答复: ", "转发: ", "回覆：", "轉寄: "]
)
def test_a_reply_without_threading_headers_joins_by_subject(mailbox, prefix):
    first, _ = ingest_message(mailbox, mail_bytes("inquiry_en.eml"))
    raw = (
        mail_bytes("reply_in_thread.eml")
        .replace(b"In-Reply-To: <fixture-inquiry-1@northwind.example>\n", b"")
        .replace(b"References: <fixture-inquiry-1@northwind.example>\n", b"")
        .replace(b"Subject: RE: ", f"Subject: {prefix}".encode())
    )
    reply, _ = ingest_message(mailbox, raw)
    assert reply.thread_id == first.thread_id


def test_the_template_help_lists_every_variable_the_engine_accepts():
    from drafts.models import PromptTemplate
    from inference.drafting import TEMPLATE_VARIABLES

    help_text = PromptTemplate._meta.get_field("reply_prompt").help_text
    assert all(f"{{{name}}}" in help_text for name in TEMPLATE_VARIABLES)

"""The mail corpus: every odd message in it parses to what a reviewer expects, and one
batch of them all is stored without a single message stopping the others."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path

import pytest

from drafts import mailparse
from drafts.ingest import ingest_message
from drafts.models import Mailbox, Message
from tests.conftest import MAIL_DIR

CORPUS = MAIL_DIR / "corpus"
FILES = sorted(CORPUS.glob("*.eml"))


@dataclass(frozen=True)
class Expect:
    """What a reviewer should see; None means "not checked"."""

    subject: str | None = None
    from_name: str | None = None
    from_address: str | None = None
    auto_kind: str = ""
    text: tuple[str, ...] = ()  # substrings of the text
    model_text: tuple[str, ...] = ()  # substrings of the model text
    not_model_text: tuple[str, ...] = ()
    defects: tuple[str, ...] = ()  # substrings, each found in some defect
    files: tuple[str, ...] | None = None  # attachment file names, in order


ZH_OUTLOOK = "我们决定续签两年，请发正式报价。\n\n李娜"
EXPECTED: dict[str, Expect] = {
    "attachment_encoded_names.eml": Expect(
        files=("报价单.pdf", "二〇二六年十一月报价单.pdf", "王喆的说明.txt", "合同扫描件.jpg")
    ),
    "attachment_forwarded_message.eml": Expect(
        text=("Forwarding the message",), files=("attachment-1.eml",)
    ),
    "attachment_path_traversal.eml": Expect(
        files=(
            "passwd",
            "evil.bat",
            "htaccess",
            "invoicegnp.exe",
            "report_script___.pdf",
            "A" * 145 + ".xlsx",
        )
    ),
    "attachment_raw_8bit_name.eml": Expect(files=("Prüfbericht März.pdf",)),
    "attachment_without_name.eml": Expect(files=("attachment-1.bin", "attachment-2.png")),
    "auto_reply_auto_submitted.eml": Expect(
        subject="自动回复: 关于合同续签", auto_kind="auto-reply"
    ),
    "auto_reply_outlook_suppress.eml": Expect(auto_kind="auto-reply"),
    "auto_submitted_no_is_a_person.eml": Expect(auto_kind="", text=("add 5 seats",)),
    "binary_nul_bytes.eml": Expect(text=("The log shows a NUL before the error.",)),
    "bounce_delivery_status.eml": Expect(
        from_address="mailer-daemon@mx.acme.example",
        auto_kind="bounce",
        text=("550 5.1.1 User unknown",),
        files=("attachment-1.bin", "attachment-2.bin"),
    ),
    "bounce_empty_return_path.eml": Expect(auto_kind="bounce"),
    "bounce_postmaster.eml": Expect(
        from_address="postmaster@northwind.example", auto_kind="bounce"
    ),
    "charset_big5.eml": Expect(
        subject="繁體中文介面詢問", from_name="陳志明", text=("支援繁體中文介面",)
    ),
    "charset_gb2312_really_gbk.eml": Expect(
        subject="王喆询问报价", from_name="王喆", text=("我是王喆，想咨询一下艾克美客服云的报价",)
    ),
    "charset_gb_2312_80.eml": Expect(subject="发票抬头修改", text=("华信贸易有限公司",)),
    "charset_iso_2022_jp.eml": Expect(
        subject="パスワード再設定", from_name="佐藤花子", text=("再設定できません",)
    ),
    "charset_shift_jis.eml": Expect(
        subject="請求書の再発行について", text=("①請求書の再発行", "②支払期限")
    ),
    "charset_unknown_label.eml": Expect(
        text=("the café menu",), defects=('unknown charset "x-unknown", read as UTF-8',)
    ),
    "charset_utf8_invalid_bytes.eml": Expect(
        text=("1 200 € \ufffd\ufffd and",), defects=("bad bytes replaced",)
    ),
    "charset_utf8_without_dash.eml": Expect(text=("résumé of today’s call: the naïve",)),
    "date_unreadable.eml": Expect(defects=("unreadable Date",)),
    "from_display_name_is_address.eml": Expect(
        from_name="ceo@acme.example", from_address="attacker@evil.example"
    ),
    "from_encoded_word_injection.eml": Expect(
        from_name='"CEO" <ceo@acme.example>', from_address="attacker@evil.example"
    ),
    "from_no_real_address.eml": Expect(
        from_name="ceo@acme.example", from_address="", defects=("no valid address",)
    ),
    "from_unquoted_name_is_address.eml": Expect(
        from_name="ceo@acme.example", from_address="attacker@evil.example"
    ),
    "header_broken_encoded_words.eml": Expect(
        from_name="Renée Dubois", defects=("broken encoded word",)
    ),
    "header_duplicate_from.eml": Expect(
        from_address="peter.novak@contoso.example", defects=("2 From headers",)
    ),
    "header_raw_8bit_gbk.eml": Expect(subject="关于合同续签", from_name="张伟"),
    "header_raw_8bit_utf8.eml": Expect(
        subject="Grüße und eine Frage zur Rechnung", from_name="Jürgen Müller"
    ),
    "html_hostile_everything.eml": Expect(text=("Please pay invoice 118 today.",)),
    "list_id.eml": Expect(auto_kind="list"),
    "mime_broken_base64.eml": Expect(
        text=("The import stops with error E42",), files=("error.png",), defects=("base64",)
    ),
    "mime_broken_quoted_printable.eml": Expect(
        text=("10=ZZ off",), defects=("broken quoted-printable",)
    ),
    "mime_missing_boundary.eml": Expect(
        text=("Which export settings keep the column order?",), defects=("MIME boundary",)
    ),
    "mime_missing_close_boundary.eml": Expect(
        text=("The weekly report is attached.",),
        files=("weekly.csv",),
        defects=("closing MIME boundary missing",),
    ),
    "mime_outlook_related.eml": Expect(
        text=("Our logo is wrong",), files=("attachment-1.png", "invoice-2026-11.pdf")
    ),
    "mime_wrong_boundary.eml": Expect(
        text=("The dashboard takes 40 seconds",), defects=("MIME boundary",)
    ),
    "no_content_type.eml": Expect(text=("Can I pay the invoice in €? Thanks – Olivia",)),
    "no_message_id.eml": Expect(subject="Do you offer a nonprofit discount?"),
    "precedence_bulk.eml": Expect(auto_kind="bulk"),
    "precedence_junk.eml": Expect(auto_kind="bulk"),
    "precedence_list.eml": Expect(auto_kind="bulk"),
    "quote_apple_zh.eml": Expect(model_text=("17号可以，谢谢！",), not_model_text=("写道", "发自")),
    "quote_forwarded_en.eml": Expect(model_text=("can you help?", "charges 30 seats")),
    "quote_foxmail_zh.eml": Expect(
        model_text=("还是无法登录，提示密码错误。",), not_model_text=("发件人", "张伟", "-----")
    ),
    "quote_gmail_en.eml": Expect(
        model_text=("include the onboarding package?\n\nOlivia",), not_model_text=("wrote", ">")
    ),
    "quote_gmail_zh.eml": Expect(
        model_text=("请把发票寄到上海的新地址。",), not_model_text=("写道", "财务部", "-- ")
    ),
    "quote_interleaved_en.eml": Expect(
        model_text=("25 seats, maybe 30 next year.", "Yes, with Azure AD."),
        not_model_text=("How many seats", "wrote:"),
    ),
    "quote_iphone_en.eml": Expect(
        model_text=("10 am is fine",), not_model_text=("Sent from", "Does 10 am")
    ),
    "quote_outlook_en.eml": Expect(
        model_text=("renew for two more years.",),
        not_model_text=("Peter Novak", "Original Message", "30 November"),
    ),
    "quote_outlook_web_en.eml": Expect(
        model_text=("The 17th works for us.",), not_model_text=("____", "Can you do")
    ),
    "quote_outlook_zh.eml": Expect(
        from_name="李娜", model_text=(ZH_OUTLOOK,), not_model_text=("邮件原件", "发件人")
    ),
    "quote_qq_html_zh.eml": Expect(
        text=("好的，我们下周一付款。", "原始邮件"),
        model_text=("好的，我们下周一付款。",),
        not_model_text=("原始邮件", "账单"),
    ),
    "read_receipt.eml": Expect(auto_kind="auto-reply"),
}


def test_every_corpus_file_has_expectations_and_a_readme_line():
    assert sorted(EXPECTED) == [path.name for path in FILES]
    readme = (CORPUS / "README.md").read_text()
    assert all(f"`{path.name}`" in readme for path in FILES)


def test_corpus_files_are_small():
    assert len(FILES) >= 25
    assert all(path.stat().st_size < 20_000 for path in FILES)


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_each_corpus_file_shows_what_a_reviewer_expects(path: Path):
    parsed = mailparse.parse(path.read_bytes())
    expect = EXPECTED[path.name]
    for name in ("subject", "from_name", "from_address"):
        if getattr(expect, name) is not None:
            assert getattr(parsed, name) == getattr(expect, name), name
    assert parsed.auto_kind == expect.auto_kind
    assert all(part in parsed.text for part in expect.text)
    assert all(part in parsed.model_text for part in expect.model_text)
    assert not any(part in parsed.model_text for part in expect.not_model_text)
    assert all(any(part in defect for defect in parsed.defects) for part in expect.defects)
    if expect.files is not None:
        assert tuple(a.filename for a in parsed.attachments) == expect.files


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_each_corpus_file_stores_only_text_a_database_accepts(path: Path):
    parsed = mailparse.parse(path.read_bytes())
    strings = [
        getattr(parsed, f.name) for f in fields(parsed) if isinstance(getattr(parsed, f.name), str)
    ]
    strings += [*parsed.references, *parsed.defects, *(v for h in parsed.headers for v in h)]
    strings += [a.filename for a in parsed.attachments]
    # PostgreSQL refuses NUL in text and lone surrogates in text and JSON.
    assert not [s for s in strings if re.search("[\x00\ud800-\udfff]", s)]
    assert len(parsed.subject) <= 998 and len(parsed.from_name) <= 300
    assert re.fullmatch(r"(|[^@\s<>\"]+@[^@\s<>\"]+)", parsed.from_address)


@pytest.mark.django_db
def test_the_whole_corpus_is_stored_in_one_batch():
    mailbox = Mailbox.default()
    for path in FILES:
        ingest_message(mailbox, path.read_bytes())
    assert Message.objects.count() == len(FILES)
    assert Message.objects.filter(from_address="attacker@evil.example").count() == 3
    assert not Message.objects.filter(from_address="ceo@acme.example").exists()

"""Parsing mail: whatever an inbox holds, parse() returns what a reviewer should see."""

from __future__ import annotations

import base64
import random
import re
from email import policy
from email.parser import BytesParser

import pytest

from drafts import mailparse, mailtext, quoting
from drafts.mailparse import parse, sanitize_html
from tests.conftest import MAIL_DIR

CORPUS = MAIL_DIR / "corpus"
HEAD = b"From: Sam Lee <sam.lee@fabrikam.example>\nTo: support@acme.example\nSubject: Test\n"


def corpus(name: str) -> mailparse.ParsedMail:
    return parse((CORPUS / name).read_bytes())


def plain_mail(body: str, headers: str = "") -> bytes:
    return HEAD + headers.encode() + b"Content-Type: text/plain; charset=utf-8\n\n" + body.encode()


def many_parts(count: int) -> bytes:
    parts = b"".join(
        b"--b\nContent-Type: text/plain; charset=utf-8\n\npart %d\n" % n for n in range(count)
    )
    return HEAD + b"Content-Type: multipart/mixed; boundary=b\n\n" + parts + b"--b--\n"


def nested(levels: int) -> bytes:
    opening = b"".join(
        b"--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n" % (n, n + 1)
        for n in range(levels - 1)
    )
    last = levels - 1
    deepest = b"--b%d\nContent-Type: text/plain\n\ndeep inside\n--b%d--\n" % (last, last)
    closing = b"".join(b"--b%d--\n" % n for n in range(levels - 2, -1, -1))
    return HEAD + b"Content-Type: multipart/mixed; boundary=b0\n\n" + opening + deepest + closing


# ---- bounded parsing ---------------------------------------------------------------------


def test_a_message_with_10000_parts_is_read_up_to_the_limit_and_the_rest_counted():
    parsed = parse(many_parts(10_000))
    # The message itself is one of the 500 parts read: 499 text parts follow it.
    assert parsed.text.splitlines() == [f"part {n}" for n in range(mailparse.MAX_PARTS - 1)]
    assert "more than 500 MIME parts: 9,501 more parts not read" in parsed.defects


def test_200_levels_of_nesting_stop_at_the_depth_limit_without_an_error():
    parsed = parse(nested(200))
    assert parsed.subject == "Test"
    assert "deep inside" not in parsed.text
    assert any("nested deeper than 50 levels" in d for d in parsed.defects)


def test_nesting_within_the_limit_is_read():
    assert "deep inside" in parse(nested(20)).text


def test_a_1_mb_subject_is_cut_and_flagged():
    raw = HEAD.replace(b"Subject: Test", b"Subject: " + b"refund please " * 75_000) + b"\nHello"
    parsed = parse(raw)
    assert parsed.subject.startswith("refund please refund please")
    assert len(parsed.subject) == 998
    assert any(d.startswith("Subject header is 1,050,000 characters") for d in parsed.defects)
    assert parsed.text == "Hello"


def test_50000_header_lines_keep_the_first_thousand():
    lines = b"".join(b"X-Trace-%d: hop\n" % n for n in range(50_000))
    parsed = parse(HEAD + lines + b"\nHello")
    assert len(parsed.headers) == mailparse.MAX_HEADERS
    assert parsed.headers[0] == ["From", "Sam Lee <sam.lee@fabrikam.example>"]
    assert "49,003 more header lines not stored" in parsed.defects
    assert parsed.text == "Hello"


def test_a_hostile_content_type_does_not_reach_the_stdlib_parser_whole():
    raw = HEAD + b"Content-Type: text/plain; x=" + b"(" * 50_000 + b"\n\nStill readable"
    assert parse(raw).text == "Still readable"


def test_an_oversize_message_gets_its_headers_read_and_nothing_else():
    raw = plain_mail("A long story. " * 100)
    parsed = parse(raw, max_bytes=500)
    assert parsed.oversize
    assert parsed.subject == "Test"
    assert parsed.from_address == "sam.lee@fabrikam.example"
    assert parsed.text == "" and parsed.attachments == []
    assert any("over the 500-byte limit; only the headers were read" in d for d in parsed.defects)
    assert not parse(raw).oversize


def test_a_message_of_millions_of_empty_lines_is_treated_as_oversize():
    parsed = parse(HEAD + b"\n" + b"\n" * 2_000_000)
    assert parsed.oversize
    assert any("over the 1,000,000-line limit" in d for d in parsed.defects)


def test_the_raw_bytes_are_not_changed_by_parsing():
    raw = (CORPUS / "mime_wrong_boundary.eml").read_bytes()
    copy = bytes(raw)
    parse(raw)
    assert raw == copy


def test_the_same_bytes_get_the_same_synthetic_message_id():
    raw = (CORPUS / "no_message_id.eml").read_bytes()
    first, again = parse(raw), parse(raw)
    assert first.message_id == again.message_id
    assert re.fullmatch(r"<synthetic-[0-9a-f]{32}@replyhub\.invalid>", first.message_id)
    assert parse(raw + b"P.S. one more line\n").message_id != first.message_id


def test_bytes_that_are_not_mail_are_refused():
    with pytest.raises(mailparse.NotMailError):
        parse(b"\x89PNG\r\n\x1a\n")


def test_mangled_corpus_messages_never_raise_and_store_only_clean_text():
    rng = random.Random(20261103)
    seeds = [path.read_bytes() for path in sorted(CORPUS.glob("*.eml"))]
    noise = [b"\n", b"--", b"=?", b"?=", b'"', b"<", b"(", b";", b"\xff", b"\x00", b"=?gb2312?B?"]
    for _ in range(300):
        raw = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 10)):
            at = rng.randrange(len(raw))
            if rng.random() < 0.5:
                raw[at:at] = rng.choice(noise)
            else:
                del raw[at : at + rng.randint(1, 30)]
        if not mailparse.looks_like_mail(bytes(raw)):
            continue
        parsed = parse(bytes(raw))
        strings = [parsed.subject, parsed.from_name, parsed.text, parsed.model_text]
        strings += [*parsed.defects, *(a.filename for a in parsed.attachments)]
        assert not any(re.search("[\x00\ud800-\udfff]", s) for s in strings)


# ---- headers and addresses ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "name", "address"),
    [
        ('"ceo@acme.example" <attacker@evil.example>', "ceo@acme.example", "attacker@evil.example"),
        ("ceo@acme.example <attacker@evil.example>", "ceo@acme.example", "attacker@evil.example"),
        ("attacker@evil.example (ceo@acme.example)", "ceo@acme.example", "attacker@evil.example"),
        ('"ceo@acme.example"', "ceo@acme.example", ""),
        ('"alice@acme.example" bob@evil.example', "alice@acme.example", ""),
        ("alice@acme.example)<bob@evil.example>", "alice@acme.example)", "bob@evil.example"),
        ("ceo@acme.example@evil.example", "", ""),
        (
            "=?utf-8?Q?=22x=22_<ceo@acme.example>?= <bob@evil.example>",
            '"x" <ceo@acme.example>',
            "bob@evil.example",
        ),
        ("undisclosed-recipients:;", "", ""),
        ("Team: Li Na <li.na@huaxin.example>, bob@x.example;", "Li Na", "li.na@huaxin.example"),
        ('"Doe, John" <John.Doe@Contoso.example>', "Doe, John", "john.doe@contoso.example"),
        ("<@relay.example:olivia@northwind.example>", "", "olivia@northwind.example"),
        ('"john doe"@x.example', "john doe", ""),
        ("Bob <bob@[127.0.0.1]>", "Bob", ""),
        ("", "", ""),
    ],
)
def test_the_address_is_never_taken_from_a_display_name(header, name, address):
    found_name, found_address, _ = mailtext.parse_address(header)
    assert (found_name, found_address) == (name, address)


def test_gb2312_labelled_headers_with_gbk_characters_decode():
    word = "=?gb2312?B?" + base64.b64encode("王喆".encode("gbk")).decode() + "?="
    assert mailtext.decode_header(f"{word} <wang.zhe@huaxin.example>")[0].startswith("王喆")


def test_a_character_split_across_encoded_words_is_joined():
    assert corpus("header_broken_encoded_words.eml").subject.startswith("客服系统报价")


def test_broken_encoded_words_are_flagged_not_fatal():
    parsed = corpus("header_broken_encoded_words.eml")
    assert parsed.from_name == "Renée Dubois"
    assert "Subject header: broken encoded word" in parsed.defects
    assert 'Subject header: unknown charset "x-klingon", read as UTF-8' in parsed.defects


def test_raw_8bit_headers_are_decoded_as_utf8_or_gbk():
    assert corpus("header_raw_8bit_utf8.eml").subject == "Grüße und eine Frage zur Rechnung"
    gbk = corpus("header_raw_8bit_gbk.eml")
    assert (gbk.subject, gbk.from_name) == ("关于合同续签", "张伟")
    assert "Subject header: raw 8-bit text, read as gb18030" in gbk.defects


def test_header_values_cannot_smuggle_line_breaks():
    raw = HEAD.replace(b"Subject: Test", b"Subject: =?utf-8?Q?Hi=0D=0ABcc:_x@evil.example?=")
    assert parse(raw + b"\nHello").subject == "Hi Bcc: x@evil.example"


def test_a_bare_message_id_is_kept_in_angle_brackets():
    parsed = parse(HEAD + b"Message-ID: abc123@mail.fabrikam.example\n\nHello")
    assert parsed.message_id == "<abc123@mail.fabrikam.example>"


def test_an_impossible_date_is_dropped_with_a_defect():
    parsed = parse(HEAD + b"Date: Mon, 01 Jan 99999 10:00:00 +0000\n\nHello")
    assert parsed.date is None
    assert any(d.startswith("unreadable Date") for d in parsed.defects)


# ---- charsets --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "codec", "label"),
    [
        ("王喆想咨询报价", "gbk", "gb2312"),
        ("王喆想咨询报价", "gbk", "GB2312"),
        ("王喆想咨询报价", "gbk", "gb_2312-80"),
        ("請問是否支援繁體中文", "big5", "big5"),
        ("①請求書の再発行", "cp932", "Shift_JIS"),
        ("パスワード再設定", "iso2022_jp", "iso-2022-jp"),
        ("naïve résumé", "utf-8", "utf8"),
        ("naïve résumé", "cp1252", "iso-8859-1"),
    ],
)
def test_charset_labels_decode_what_senders_meant(text, codec, label):
    assert mailtext.decode_bytes(text.encode(codec), label) == (text, "")


def test_unknown_and_broken_charsets_fall_back_with_replacement_characters():
    assert mailtext.decode_bytes("café".encode(), "x-unknown") == (
        "café",
        'unknown charset "x-unknown", read as UTF-8',
    )
    assert mailtext.decode_bytes(b"ok \xff\xfe", "utf-8") == (
        "ok \ufffd\ufffd",
        "text not valid in utf-8; bad bytes replaced",
    )
    assert mailtext.decode_bytes(b"\\ud800", "unicode_escape")[0] == "\\ud800"


@pytest.mark.parametrize("label", ["base64", "rot13", "zlib", "undefined", "x" * 500])
def test_labels_that_are_not_text_charsets_are_read_as_unknown(label):
    raw = HEAD.replace(b"Subject: Test", f"Subject: =?{label}?Q?caf=C3=A9?=".encode())
    raw += f"Content-Type: text/plain; charset={label}\n\ncafé".encode()
    parsed = parse(raw)
    assert (parsed.subject, parsed.text) == ("café", "café")
    assert any("unknown charset" in d for d in parsed.defects)


def test_corpus_charsets_show_readable_text():
    assert "我是王喆" in corpus("charset_gb2312_really_gbk.eml").text
    assert "繁體中文介面" in corpus("charset_big5.eml").text
    assert "①請求書の再発行" in corpus("charset_shift_jis.eml").text
    assert "パスワードを再設定できません" in corpus("charset_iso_2022_jp.eml").text
    assert "华信贸易有限公司" in corpus("charset_gb_2312_80.eml").text


# ---- malformed MIME ------------------------------------------------------------------------


def test_a_wrong_boundary_is_recovered_from_the_delimiter_lines():
    parsed = corpus("mime_wrong_boundary.eml")
    assert parsed.text.strip() == "The dashboard takes 40 seconds to load since Monday."
    assert "wrong or missing MIME boundary; parts found by their delimiters" in parsed.defects


def test_broken_base64_is_decoded_as_far_as_it_goes():
    parsed = corpus("mime_broken_base64.eml")
    assert parsed.text.startswith("The import stops with error E42")
    assert "part 1 (text/plain): broken base64 (truncated)" in parsed.defects


def test_broken_quoted_printable_keeps_the_text():
    parsed = corpus("mime_broken_quoted_printable.eml")
    assert "10=ZZ off for annual plans but the checkout shows 5€" in parsed.text
    assert "message: broken quoted-printable" in parsed.defects


def test_text_plain_is_preferred_and_html_is_sanitized_alongside():
    parsed = corpus("mime_outlook_related.eml")
    assert parsed.text.strip() == "Our logo is wrong on the invoice, see the picture."
    assert "<p>Our logo is wrong" in parsed.html
    assert "cid:" not in parsed.html_with_images


def test_text_is_derived_from_html_when_there_is_no_plain_part():
    parsed = corpus("html_hostile_everything.eml")
    assert parsed.text.startswith("Please pay invoice 118 today.")
    assert "Amount 1,200 EUR" in parsed.text
    assert "fetch(" not in parsed.text and "Invoice\n" not in parsed.text


def test_nul_bytes_never_reach_the_stored_text():
    assert corpus("binary_nul_bytes.eml").text == "The log shows a NUL before the error.\n"


# ---- HTML ------------------------------------------------------------------------------------


def test_sanitized_html_loads_nothing_and_runs_nothing():
    html = corpus("html_hostile_everything.eml").html
    for banned in ("<script", "onload", "onerror", "javascript", "data:", "<style", "url(", "<img"):
        assert banned not in html
    for banned in ("<form", "<input", "<iframe", "<object", "<meta", "<base", "<link", "/admin"):
        assert banned not in html
    assert "tracker.example" not in html and "evil.example" not in html
    assert '<a href="https://pay.example/invoice/118" rel="noopener noreferrer nofollow">' in html
    assert "<b>invoice 118</b>" in html


def test_remote_images_are_kept_only_when_asked_and_only_over_http():
    html = corpus("html_hostile_everything.eml").html_with_images
    assert '<img src="https://tracker.example/open.gif" width="1" height="1">' in html
    assert "data:" not in html and "cid:" not in html and "onerror" not in html
    not_web = '<img src="cid:logo"><img src="//cdn.example/a.png"><img src="mailto:a@b.example">'
    assert sanitize_html(not_web, allow_remote_images=True) == "<img><img><img>"
    assert "<img" not in sanitize_html('<img src="https://cdn.example/a.png">')


def test_deeply_nested_html_is_shown_as_text_only():
    raw = HEAD + b"Content-Type: text/html\n\n" + b"<div>" * 100_000 + b"Help me"
    parsed = parse(raw)
    assert parsed.html == ""
    assert parsed.text == "Help me"
    assert "HTML nested too deeply to show; text only" in parsed.defects


# ---- model text ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kept", "dropped"),
    [
        ("quote_gmail_en.eml", "include the onboarding package", "7,500 EUR"),
        ("quote_outlook_en.eml", "renew for two more years", "Head of IT"),
        ("quote_outlook_web_en.eml", "The 17th works for us.", "Can you do"),
        ("quote_iphone_en.eml", "10 am is fine", "Sent from my iPhone"),
        ("quote_outlook_zh.eml", "我们决定续签两年", "邮件原件"),
        ("quote_apple_zh.eml", "17号可以", "发自我的iPhone"),
        ("quote_gmail_zh.eml", "请把发票寄到上海的新地址", "财务部"),
        ("quote_foxmail_zh.eml", "提示密码错误", "请尝试重置密码"),
        ("quote_qq_html_zh.eml", "我们下周一付款", "原始邮件"),
    ],
)
def test_model_text_drops_quoted_history_and_signatures(name, kept, dropped):
    parsed = corpus(name)
    assert kept in parsed.model_text and dropped not in parsed.model_text
    assert dropped in parsed.text  # the reviewer still sees everything


def test_answers_between_quotes_are_kept_for_the_model():
    model_text = corpus("quote_interleaved_en.eml").model_text
    assert model_text == "25 seats, maybe 30 next year.\n\nYes, with Azure AD.\n\nOlivia"


def test_a_forwarded_message_stays_in_the_model_text():
    assert "charges 30 seats but we have 25" in corpus("quote_forwarded_en.eml").model_text


def test_a_message_that_is_only_a_quote_keeps_its_text_for_the_model():
    assert quoting.strip_quoted("> just the old message\n") == "> just the old message"


def test_a_list_under_a_dashed_rule_is_not_taken_for_a_signature():
    text = "Please ship:\n----------\nItem A\nItem B"
    assert quoting.strip_quoted(text) == text


def test_a_sentence_starting_like_a_mobile_signature_is_kept():
    text = "Sent from our Berlin office, the parcel arrived broken.\nPlease replace it."
    assert quoting.strip_quoted(text) == text


# ---- attachments -----------------------------------------------------------------------------


def test_attachment_names_cannot_escape_or_hide():
    names = [a.filename for a in corpus("attachment_path_traversal.eml").attachments]
    assert names[:5] == ["passwd", "evil.bat", "htaccess", "invoicegnp.exe", "report_script___.pdf"]
    assert len(names[5]) == 150 and names[5].endswith(".xlsx")


def test_encoded_attachment_names_are_decoded():
    names = [a.filename for a in corpus("attachment_encoded_names.eml").attachments]
    assert names == ["报价单.pdf", "二〇二六年十一月报价单.pdf", "王喆的说明.txt", "合同扫描件.jpg"]
    assert [a.filename for a in corpus("attachment_raw_8bit_name.eml").attachments] == [
        "Prüfbericht März.pdf"
    ]


def test_attachments_without_a_name_get_one_from_their_type():
    files = corpus("attachment_without_name.eml").attachments
    assert [(a.filename, a.size) for a in files] == [
        ("attachment-1.bin", 3),
        ("attachment-2.png", 8),
    ]


def test_inline_images_and_files_keep_their_bytes_and_kind():
    image, pdf = corpus("mime_outlook_related.eml").attachments
    assert (image.content_type, image.inline, image.data[:4]) == ("image/png", True, b"\x89PNG")
    assert (pdf.filename, pdf.inline, pdf.data[:5]) == ("invoice-2026-11.pdf", False, b"%PDF-")


def test_an_attachment_over_the_limit_keeps_its_name_and_size_only():
    raw = (CORPUS / "mime_outlook_related.eml").read_bytes()
    parsed = parse(raw, max_attachment_bytes=50)
    image, pdf = parsed.attachments
    assert (image.size, image.data) == (70, b"")
    assert (pdf.size, len(pdf.data)) == (37, 37)
    assert "part 5 (image/png): attachment-1.png is 70 bytes, over the limit; not kept" in (
        parsed.defects
    )


def test_an_attached_message_is_a_file_not_the_body():
    parsed = corpus("attachment_forwarded_message.eml")
    [message] = parsed.attachments
    assert message.content_type == "message/rfc822" and message.filename == "attachment-1.eml"
    assert message.data.startswith(b"From: Finance <finance@northwind.example>")
    assert "charges 30 seats" not in parsed.text


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ('attachment; filename="report.pdf"', "report.pdf"),
        ("attachment; filename*=utf-8''%E6%97%A5%E5%BF%97.txt", "日志.txt"),
        ("attachment; filename*0*=utf-8''%E6%97; filename*1*=%A5.txt", "日.txt"),
        ('attachment; filename="=?utf-8?B?5pel5b+XLnR4dA==?="', "日志.txt"),
        ('attachment; filename="a\\"b.txt"', 'a"b.txt'),
        ("attachment", ""),
    ],
)
def test_mime_parameters_are_decoded(header, name):
    assert mailtext.mime_param(header, "filename") == name


# ---- automatic mail --------------------------------------------------------------------------


def test_auto_kind_works_on_a_message_parsed_elsewhere():
    raw = (CORPUS / "bounce_delivery_status.eml").read_bytes()
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert mailparse.auto_kind(msg, "mailer-daemon@mx.acme.example") == "bounce"


def test_a_bounce_keeps_its_report_as_a_file():
    parsed = corpus("bounce_delivery_status.eml")
    assert "550 5.1.1 User unknown" in parsed.text
    assert [a.content_type for a in parsed.attachments] == [
        "message/delivery-status",
        "text/rfc822-headers",
    ]

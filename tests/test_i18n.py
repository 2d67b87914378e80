"""The interface in English and Simplified Chinese, chosen per user."""

from __future__ import annotations

import ast
import gettext
import io
import re
from datetime import timedelta
from pathlib import Path

import polib
import pytest
from django.apps import apps
from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.template import engines
from django.templatetags.i18n import BlockTranslateNode, TranslateNode
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone, translation

from drafts import stats
from drafts.ingest import ingest_message
from drafts.management.commands.compile_translations import compile_catalogues
from drafts.models import Draft, StaffProfile
from inference.drafting import INTENTS
from tests.conftest import DEMO_INBOX, MAIL_DIR, mail_bytes, make_ready_draft

BASE_DIR = Path(settings.BASE_DIR)
PO_PATH = BASE_DIR / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
PLACEHOLDER = re.compile(r"%(?:\(\w+\))?[sdr]")
# _("...") as a filter argument: {{ subject|default:_("(no subject)") }}
FILTER_ARGUMENT = re.compile(r'_\("((?:[^"\\]|\\.)*)"\)')


@pytest.fixture(scope="session", autouse=True)
def compiled_translations() -> None:
    """A clean checkout has no .mo file: compile it before any page is shown in Chinese."""
    call_command("compile_translations", stdout=io.StringIO())
    # Django caches each language's catalogue per process; changing LOCALE_PATHS (even to
    # itself) drops them, in case one was loaded before the .mo existed.
    with override_settings(LOCALE_PATHS=list(settings.LOCALE_PATHS)):
        pass


@pytest.fixture(autouse=True)
def _back_to_the_default_language():
    """A request leaves its language active in this thread; the next test starts afresh."""
    yield
    translation.deactivate()


def login(client, user: User, language: str | None = None):
    if language:
        StaffProfile.objects.update_or_create(user=user, defaults={"language": language})
    client.force_login(user)
    return client


def switch(client, language: str, next_url: str = "/"):
    return client.post(reverse("set_language"), {"language": language, "next": next_url})


# --- Pages ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_chinese_reviewer_sees_the_queue_in_chinese(client, alice, mailbox):
    make_ready_draft(mailbox)
    page = login(client, alice, "zh-hans").get(reverse("queue")).text
    assert '<html lang="zh-hans">' in page
    assert '待审核 <span class="count">1</span>' in page
    assert ">审核队列</a>" in page
    assert ">退出登录</button>" in page
    assert 'placeholder="搜索主题、发件人、正文"' in page
    assert "<th>收到时间</th>" in page
    assert 'Awaiting review <span class="count">' not in page


@pytest.mark.django_db
def test_a_chinese_reviewer_sees_the_draft_page_in_chinese(client, alice, mailbox):
    draft = make_ready_draft(mailbox)
    page = login(client, alice, "zh-hans").get(reverse("draft", args=[draft.pk])).text
    for text in (
        ">批准并发送</button>",
        ">保存修改</button>",
        ">驳回</button>",
        ">重新生成</button>",
        ">转派</button>",
        ">快捷键</button>",
        "<h3>快捷键</h3>",
        ">选择驳回原因…</option>",
        "意图：<strong>inquiry · 咨询</strong>",
    ):
        assert text in page
    assert "Approve &amp; send" not in page
    assert "Thank you for your interest." in page  # the reply itself is not translated


@pytest.mark.django_db
def test_flash_messages_follow_the_language(client, alice, mailbox):
    draft = make_ready_draft(mailbox)
    login(client, alice, "zh-hans")
    response = client.post(
        reverse("draft_action", args=[draft.pk]),
        {"action": "save", "reply_text": "新的回复", "version": draft.version},
        follow=True,
    )
    assert "修改已保存。" in response.text


@pytest.mark.django_db
def test_a_chinese_reviewer_acts_on_several_drafts_in_chinese(client, alice, mailbox):
    drafts = [make_ready_draft(mailbox), make_ready_draft(mailbox, "with_attachment.eml")]
    login(client, alice, "zh-hans")
    assert ">驳回所选</button>" in client.get(reverse("queue")).text
    ticked = [f"{d.pk}:{d.version}" for d in drafts]
    response = client.post(
        reverse("queue_bulk"), {"action": "reject", "reason": "tone", "draft": ticked}, follow=True
    )
    assert [str(m) for m in response.context["messages"]] == ["已驳回 2 份草稿。"]
    assert "您驳回了 2 份草稿；没有发送任何邮件。" in response.text


def test_statuses_reject_reasons_and_history_are_in_chinese(client, alice, mailbox):
    draft = make_ready_draft(mailbox)
    login(client, alice, "zh-hans")
    client.post(
        reverse("draft_action", args=[draft.pk]),
        {"action": "save", "reply_text": "新的回复", "version": draft.version},
    )
    page = client.get(reverse("draft", args=[draft.pk])).text
    assert '<span class="status ready">待审核</span>' in page
    assert '<option value="wrong_intent">意图判断错误或误解了邮件</option>' in page
    assert '<option value="tone">语气或格式不合适</option>' in page
    assert '<option value="other">其他</option>' in page
    assert "已修改 · 操作人：alice" in page
    assert "Tone or format not acceptable" not in page
    assert "Edited by" not in page

    draft.refresh_from_db()
    client.post(
        reverse("draft_action", args=[draft.pk]),
        {"action": "reject", "reason": "wrong_facts", "version": draft.version},
    )
    page = client.get(reverse("draft", args=[draft.pk])).text
    assert '<span class="status rejected">已驳回</span>' in page
    assert "已驳回 · 操作人：alice" in page
    assert "事实错误或凭空编造" in page
    queue = client.get(reverse("queue") + "?tab=rejected").text
    assert '<span class="status rejected">已驳回</span>' in queue
    # The reason is stored as a key: an English reader sees it in English.
    login(client, alice, "en")
    assert "Wrong or invented facts" in client.get(reverse("draft", args=[draft.pk])).text


@pytest.mark.django_db
def test_every_choice_label_is_translated():
    """Choice labels of the app's models change with the language (protocol names and the
    intents, which are always shown in both languages, aside)."""
    bilingual = {f"{english} · {chinese}" for english, chinese in INTENTS.values()}
    untranslatable = {"SSL/TLS", "STARTTLS", *dict(settings.LANGUAGES).values(), *bilingual}
    for model in apps.get_app_config("drafts").get_models():
        for field in model._meta.get_fields():
            for _value, label in getattr(field, "choices", None) or []:
                with translation.override("en"):
                    english = str(label)
                if english in untranslatable:
                    continue
                with translation.override("zh-hans"):
                    assert str(label) != english, f"{model.__name__}.{field.name}: {english}"


@pytest.mark.django_db
def test_a_chinese_supervisor_sees_the_stats_in_chinese(client, alice, carol, mailbox):
    unchanged = make_ready_draft(mailbox)
    unchanged.approve(alice, unchanged.generated_text)
    rejected = make_ready_draft(mailbox, "chinese_gb2312.eml")
    rejected.reject(alice, "tone")
    for draft in (unchanged, rejected):
        draft.refresh_from_db()
        Draft.objects.filter(pk=draft.pk).update(ready_at=draft.decided_at - timedelta(minutes=4))
    page = login(client, carol, "zh-hans").get(reverse("stats")).text
    assert "<title>统计 · ReplyHub</title>" in page
    assert "<h1>统计</h1>" in page
    assert "<th>处理用时中位数</th>" in page
    assert "<td>4 分 00 秒</td>" in page
    assert 'aria-label="原样批准 1，修改后批准 0，驳回 1"' in page
    assert 'title="原样批准：1"' in page
    assert 'title="驳回：1"' in page
    assert "4m 00s" not in page
    assert "approved unchanged" not in page


@pytest.mark.django_db
def test_the_stats_in_english_are_unchanged(client, alice, carol, mailbox):
    draft = make_ready_draft(mailbox)
    draft.approve(alice, "Another reply.")
    Draft.objects.filter(pk=draft.pk).update(ready_at=draft.decided_at - timedelta(minutes=75))
    page = login(client, carol, "en").get(reverse("stats")).text
    assert "<td>1h 15m</td>" in page
    assert 'title="approved after edits: 1"' in page
    with translation.override("zh-hans"):
        row = stats.per_reviewer()[0]
        assert row.median_display == "1 小时 15 分"


@pytest.mark.django_db
def test_the_upload_page_and_its_report_are_in_chinese(client, alice, mailbox):
    login(client, alice, "zh-hans")
    page = client.get(reverse("upload")).text
    assert "<h1>导入邮件</h1>" in page
    assert "支持 .eml 或 mbox 文件。" in page
    assert ">导入</button>" in page
    files = [
        SimpleUploadedFile("inquiry.eml", mail_bytes("inquiry_en.eml")),
        SimpleUploadedFile("inbox.mbox", DEMO_INBOX.read_bytes()),
    ]
    page = client.post(reverse("upload"), {"files": files}, follow=True).text
    assert "已导入到 default：新邮件 31 封，已存在 0 封，" in page
    assert "new message(s)" not in page

    again = [SimpleUploadedFile("inquiry.eml", mail_bytes("inquiry_en.eml"))]
    page = client.post(reverse("upload"), {"files": again}, follow=True).text
    assert (
        "已导入到 default：新邮件 0 封，已存在 1 封，0 封等待生成草稿，0 封已存档、不生成草稿。"
        in page
    )


@pytest.mark.django_db
def test_an_upload_that_is_not_mail_is_refused_in_chinese(client, alice, mailbox):
    files = [
        SimpleUploadedFile("inquiry.eml", mail_bytes("inquiry_en.eml")),
        SimpleUploadedFile("holiday.png", (MAIL_DIR.parent / "not_mail.png").read_bytes()),
    ]
    login(client, alice, "zh-hans")
    page = client.post(reverse("upload"), {"files": files}, follow=True).text
    assert "未导入任何邮件：holiday.png：不是邮件或 mbox 文件（文件开头不是邮件头）" in page
    assert "not an email message" not in page
    assert not mailbox.messages.exists()


@pytest.mark.django_db
def test_the_not_drafted_page_says_why_in_chinese(client, alice, mailbox):
    ingest_message(mailbox, mail_bytes("out_of_office.eml"))
    page = login(client, alice, "zh-hans").get(reverse("not_drafted")).text
    assert "<h1>已存档、未生成草稿的邮件</h1>" in page
    assert '<span class="status">自动回复</span>' in page
    assert "auto-reply" not in page


@pytest.mark.django_db
def test_the_login_lockout_is_in_the_browser_language(client, alice, settings):
    settings.REPLYHUB_LOGIN_ATTEMPTS = 3
    settings.REPLYHUB_LOGIN_LOCKOUT_MINUTES = 15
    chinese = {"HTTP_ACCEPT_LANGUAGE": "zh-CN,zh;q=0.9"}
    for _attempt in range(3):
        response = client.post(
            reverse("login"), {"username": "alice", "password": "wrong"}, **chinese
        )
        assert "用户名" in response.text
    locked = client.post(
        reverse("login"), {"username": "alice", "password": "alice-password-1"}, **chinese
    )
    assert locked.status_code == 429
    assert (
        '<p class="error">登录失败次数过多。请在 15 分钟后重试，或联系管理员重置密码。</p>'
        in locked.text
    )
    assert "Too many failed logins" not in locked.text
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_an_english_reviewer_sees_english_whatever_the_browser_says(client, alice, mailbox):
    draft = make_ready_draft(mailbox)
    login(client, alice, "en")
    page = client.get(reverse("queue"), HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9").text
    assert '<html lang="en">' in page
    assert 'Awaiting review <span class="count">1</span>' in page
    assert "待审核" not in page
    page = client.get(reverse("draft", args=[draft.pk]), HTTP_ACCEPT_LANGUAGE="zh-CN").text
    assert "Approve &amp; send" in page
    assert "批准并发送" not in page


@pytest.mark.django_db
def test_without_a_profile_the_browser_language_is_used(client, alice, mailbox):
    make_ready_draft(mailbox)
    client.force_login(alice)
    assert "待审核" in client.get(reverse("queue"), HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9").text
    assert "Awaiting review" in client.get(reverse("queue")).text


# --- Switching -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_top_bar_has_the_language_switch(client, alice):
    page = login(client, alice).get(reverse("queue")).text
    assert f'action="{reverse("set_language")}"' in page
    assert '<select name="language" id="language-select"' in page
    assert '<option value="zh-hans" >简体中文</option>' in page


@pytest.mark.django_db
def test_switching_the_language_lasts_across_logins(client, alice, mailbox):
    make_ready_draft(mailbox)
    client.login(username="alice", password="alice-password-1")
    response = switch(client, "zh-hans", reverse("queue"))
    assert response.status_code == 302
    assert response["Location"] == reverse("queue")
    profile = StaffProfile.objects.get(user=alice)
    assert (profile.language, profile.role) == ("zh-hans", StaffProfile.REVIEWER)
    assert "待审核" in client.get(reverse("queue")).text

    client.post(reverse("logout"))
    client.login(username="alice", password="alice-password-1")
    assert "待审核" in client.get(reverse("queue")).text
    switch(client, "en")
    assert "Awaiting review" in client.get(reverse("queue")).text


@pytest.mark.django_db
def test_switching_keeps_the_role(client, carol):
    login(client, carol)
    switch(client, "zh-hans")
    assert StaffProfile.objects.get(user=carol).role == StaffProfile.SUPERVISOR


@pytest.mark.django_db
@pytest.mark.parametrize(
    "next_url", ["https://evil.example/", "//evil.example/queue", "javascript:alert(1)"]
)
def test_the_switch_never_redirects_to_another_site(client, alice, next_url):
    response = switch(login(client, alice), "zh-hans", next_url)
    assert response.status_code == 302
    assert response["Location"] == reverse("queue")


@pytest.mark.django_db
def test_the_switch_goes_back_to_the_page_it_was_on(client, alice, mailbox):
    draft = make_ready_draft(mailbox)
    here = reverse("draft", args=[draft.pk]) + "?remote=1"
    assert switch(login(client, alice), "zh-hans", here)["Location"] == here


@pytest.mark.django_db
def test_an_anonymous_visitor_can_switch_on_the_login_page(client):
    response = client.post(
        reverse("set_language"), {"language": "zh-hans", "next": reverse("login")}, follow=True
    )
    assert ">登录</button>" in response.text
    assert not StaffProfile.objects.exists()


@pytest.mark.django_db
def test_an_unknown_language_changes_nothing(client, alice):
    switch(login(client, alice), "klingon")
    assert not StaffProfile.objects.filter(user=alice).exists()
    assert "Log out" in client.get(reverse("queue")).text


def test_the_switch_only_accepts_post(client):
    assert client.get(reverse("set_language")).status_code == 405


# --- The catalogue -------------------------------------------------------------------------


def catalogue() -> polib.POFile:
    return polib.pofile(str(PO_PATH))


def test_every_message_has_a_translation():
    po = catalogue()
    assert [e.msgid for e in po.fuzzy_entries()] == []
    assert [e.msgid for e in po.obsolete_entries()] == []
    assert [e.msgid for e in po if not all(t.strip() for t in translations(e))] == []


def translations(entry: polib.POEntry) -> list[str]:
    """An entry's texts: one, or one per plural form (Chinese has one form)."""
    return list(entry.msgstr_plural.values()) if entry.msgid_plural else [entry.msgstr]


def test_translations_keep_the_placeholders():
    for entry in catalogue():
        # Each plural form says the count: its placeholders are the plural msgid's.
        source = entry.msgid_plural or entry.msgid
        for text in translations(entry):
            assert sorted(PLACEHOLDER.findall(text)) == sorted(PLACEHOLDER.findall(source)), (
                entry.msgid
            )


def marked_in_templates() -> set[tuple[str | None, str]]:
    """(context, msgid) of every string the templates mark for translation."""
    engine = engines["django"].engine
    found = set()
    for path in (BASE_DIR / "templates").rglob("*.html"):
        source = path.read_text()
        nodes = engine.from_string(source).nodelist
        for node in nodes.get_nodes_by_type(TranslateNode):
            context = node.message_context.var if node.message_context else None
            found.add((context, node.filter_expression.var.literal))
        for node in nodes.get_nodes_by_type(BlockTranslateNode):
            context = node.message_context.var if node.message_context else None
            found.add((context, node.render_token_list(node.singular)[0]))
        found.update((None, msgid) for msgid in FILTER_ARGUMENT.findall(source))
    return found


def marked_in_python() -> set[tuple[str | None, str]]:
    """(context, msgid) of every gettext call with literal strings in the app's Python code."""
    found = set()
    for path in [*(BASE_DIR / "drafts").rglob("*.py"), *(BASE_DIR / "replyhub").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            literals = [
                a.value if isinstance(a, ast.Constant) and isinstance(a.value, str) else None
                for a in node.args
            ]
            singular = ("_", "gettext", "gettext_lazy", "ngettext", "ngettext_lazy")
            if node.func.id in singular and literals and literals[0]:
                found.add((None, literals[0]))
            elif node.func.id in ("pgettext", "pgettext_lazy") and len(literals) == 2:
                if None not in literals:
                    found.add((literals[0], literals[1]))
    return found


def test_every_marked_string_is_in_the_catalogue():
    translated = {(e.msgctxt, e.msgid) for e in catalogue() if all(translations(e))}
    marked = marked_in_templates() | marked_in_python()
    assert len(marked) > 100
    assert sorted(marked - translated, key=str) == []


def test_the_catalogue_has_no_stale_entries():
    marked = marked_in_templates() | marked_in_python()
    stale = {(e.msgctxt, e.msgid) for e in catalogue()} - marked
    assert sorted(stale, key=str) == []


# --- Compiling -----------------------------------------------------------------------------


def test_compiling_needs_no_gnu_gettext_and_is_idempotent(tmp_path):
    messages = tmp_path / "zh_Hans" / "LC_MESSAGES"
    messages.mkdir(parents=True)
    po = polib.POFile()
    po.metadata = {"Content-Type": "text/plain; charset=UTF-8"}
    po.append(polib.POEntry(msgid="Queue", msgstr="审核队列"))
    po.append(polib.POEntry(msgid="Reject", msgstr="拒绝", flags=["fuzzy"]))
    po.save(str(messages / "django.po"))

    assert compile_catalogues([tmp_path]) == [messages / "django.mo"]
    assert compile_catalogues([tmp_path]) == []
    with (messages / "django.mo").open("rb") as mo:
        compiled = gettext.GNUTranslations(mo)
    assert compiled.gettext("Queue") == "审核队列"
    assert compiled.gettext("Reject") == "Reject"  # fuzzy entries are left out, as msgfmt does


@pytest.mark.django_db
def test_the_undo_banner_and_its_answer_are_in_chinese(client, alice, mailbox, settings):
    settings.REPLYHUB_UNDO_SECONDS = 10
    draft = make_ready_draft(mailbox)
    action = reverse("draft_action", args=[draft.pk])
    login(client, alice, "zh-hans")
    page = client.post(action, {"action": "approve", "reply_text": "您好"}, follow=True).text
    assert "已批准：对“Pricing for Acme CRM, 25 seats”的回复将于" in page
    assert ">撤销</button>" in page
    assert "撤销批准（回到待审核）" in page
    assert "在此之前可以撤销批准" in page
    page = client.post(action, {"action": "undo"}, follow=True).text
    assert "未发送：批准已撤销。" in page
    assert "发送前撤销了批准" in page  # the history


@pytest.mark.django_db
def test_reply_targets_are_in_chinese(client, alice, carol, mailbox):
    mailbox.reply_within_hours = 1
    mailbox.save()
    draft = make_ready_draft(mailbox)
    Draft.objects.filter(pk=draft.pk).update(due_at=timezone.now() - timedelta(hours=2))
    page = login(client, alice, "zh-hans").get(reverse("queue")).text
    assert "<th>答复期限</th>" in page
    assert "已超时 2\xa0小时" in page
    assert ">最先到期</option>" in page
    draft.approve(alice, draft.reply_text)
    stats_page = login(client, carol, "zh-hans").get(reverse("stats")).text
    assert "<th>答复时长中位数</th>" in stats_page
    assert "<th>按时答复</th>" in stats_page

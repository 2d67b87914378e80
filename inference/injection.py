"""Heuristic prompt-injection checks on a customer email, as flags for the reviewer.

The model reads the email quoted between <<<EMAIL and EMAIL>>> (``inference.drafting``),
yet text in it can still try to steer the model: give it orders, fake the end of the quote
or a chat turn, ask for other customers' data, redirect the reply, or hide all of that from
the person reading the mail. Nothing here blocks a draft: each flag tells the reviewer what
to look at and quotes the words that raised it.

The patterns only fire on text aimed at the assistant, its rules or its prompt, so ordinary
support mail ("I followed your instructions", "please ignore my previous email", "please cc
my colleague", "系统提示密码错误", "请抄送给我的同事") raises nothing. A flag reads
``<kind> — <explanation>``; the kind is stable (see ``flag_kind``).
"""

from __future__ import annotations

import re
import unicodedata
from html.parser import HTMLParser

INSTRUCTIONS = "prompt_injection: instructions to the assistant"
DELIMITERS = "prompt_injection: fake delimiters or chat roles"
OTHERS_DATA = "prompt_injection: asks for other customers' data"
RECIPIENTS = "prompt_injection: asks to change recipients"
CONTROL_CHARS = "prompt_injection: zero-width or bidi control characters"
HIDDEN_TEXT = "hidden_text"
IN_HIDDEN = " (in hidden text)"

MAX_CHARS = 1_000_000  # drafts.mailtext reads no more HTML than this, and the model less text
MIN_HIDDEN_LETTERS = 20  # fewer is a spacer or a stray word; an instruction takes more
MIN_CONTROL_CHARS = 5  # one stray mark comes from copy-paste; many inside words are deliberate
SNIPPET_CHARS = 60

# Zero-width and bidi characters: invisible, yet they split "ig\u200bnore" past a pattern
# or reorder what the reviewer sees. They are removed before the other checks run.
_CONTROL = re.compile("[\u200b-\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]")
_CONTROL_IN_WORD = re.compile(rf"(?<=\w){_CONTROL.pattern}+(?=\w)")

# Shared pieces, written into the rules below as {NAME}.
_PIECES = {
    "ADDR": r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+",
    # Not the customer's own doing: "I didn't ignore your instructions", "I'll forward it".
    "MINE": r"(?<!\bi {T})(?<!we {T})(?<!'ll {T})(?<!’ll {T})(?<!will {T})(?<!not {T})"
    r"(?<!n't {T})(?<!n’t {T})(?<!never {T})",
    # An AI persona, but not a business ("an AI consultancy", "an AI language model vendor").
    "AI": r"(?:ai|chatbot|language\s+model|llm|gpt|chatgpt|dan|persona|unrestricted|unfiltered"
    r"|jailbroken)\b{NOT_TRADE}",
    "NOT_TRADE": r"(?!\s+(?:vendor|company|partner|provider|platform|product|feature|reseller"
    r"|consultan|agency|team|department|project|solution|tool|startup|service))",
    "AI_ZH": r"[^。\n]{0,12}?(?:ai|人工智能|助手|机器人|模型|dan|没有.{0,6}限制|不受.{0,6}限制)",
    # Words that make "instructions"/"rules" the model's own, not a manual's or the customer's.
    "THEIRS": r"(?:previous|prior|above|earlier|preceding|foregoing|original|initial|system"
    r"|safety)",
    "RULES": r"(?:instructions?|prompts?|directions|directives|rules|guidelines|programming"
    r"|restrictions)\b",
    "VERB": r"(?:\s+(?:me|us))?\s+(?:all\s+)?(?:the\s+|your\s+)?(?:[\w-]+\s+){0,3}?",
    "PEOPLE": r"(?:customers?|users?|clients?|subscribers?|buyers?)\b"
    r"(?!\s+(?:in|on|of|from|at)\s+(?:our|my|this)\b)",  # the customer's own people
    "OTHERS": r"(?:(?:all|every|each)\s+(?:of\s+)?)?(?:the\s+|your\s+)?other\s+{PEOPLE}",
    "ALL": r"(?:all|every|each)\s+(?:of\s+)?(?:the\s+|your\s+)?{PEOPLE}",
    "DATA": r"(?:(?:e-?mail|phone|contact|personal|order|account|billing|login|home)\s+)?"
    r"(?:e-?mails?|addresses|numbers|names|orders?|details|data|info|information|records"
    r"|contacts?|passwords?|credentials|credit\s+cards?|history)\b",
    # What "all customers' ..." must ask for to be someone else's: not "all users' data"
    # of a report the customer runs on their own account.
    "PERSONAL": r"(?:e-?mails?|e-?mail\s+addresses|addresses|phone\s+numbers|names|passwords?"
    r"|credentials|credit\s+cards?|contacts|contact\s+(?:details|info)|personal\s+(?:data"
    r"|details|info))\b",
    "WHOSE": r"(?:['’]s?)?\s+",
    "DATA_ZH": r"的?(?:客户|用户|顾客|会员|买家)的?(?:邮箱|电话|手机|联系方式|订单|资料|信息|数据"
    r"|名单|列表|姓名|地址|密码|账号)",
    "TO_ME": r"(?:发给|发到|发送|告诉我|列出|给我)",
}
# Each rule reads "trigger words ~ what must follow" (NL is a line start). Every trigger
# becomes its own pattern starting with that literal word, which the regex engine finds as
# fast as str.find; a leading \b or alternation would try every pattern at every character.
_RULES: dict[str, list[str]] = {
    INSTRUCTIONS: [
        # "ignore all previous instructions", "disregard your rules"; not "my previous email",
        # nor "the previous instructions I sent" (a customer correcting their order).
        r"ignore disregard forget override bypass ~ {MINE}\s+(?:all\s+|any\s+)?(?:of\s+)?"
        r"(?:(?:the|these|those)\s+(?:{THEIRS}\s+)+|your\s+(?:{THEIRS}\s+)*|(?:{THEIRS}\s+)+)"
        r"{RULES}(?!\s+(?:(?:i|we)\s+(?:sent|gave|wrote|provided|mentioned)|from\s+(?:me|us|my"
        r"|our)|in\s+(?:my|our))\b)",
        r"forget ~ \s+(?:everything|all)\s+(?:above|before|you\s+(?:were|have\s+been)\s+told)",
        # A new persona; "you are now offering AI" has no article, "act as a reseller" no AI.
        r"you ~ \s+are\s+(?:(?:now|no\s+longer)\s+(?:an?|in|my|called|named|the)\s+"
        r"(?:[\w-]+\s+){0,3}?{AI}|now\s+dan\b|no\s+longer\s+(?:bound|restricted|limited)"
        r"|(?:now\s+)?in\s+developer\s+mode)",
        r"act roleplay role-play ~ \s+as\s+(?:an?\s+|the\s+|my\s+)?(?:[\w-]+\s+){0,2}?{AI}",
        r"pretend ~ \s+(?:to\s+be|(?:that\s+)?you\s+are)\s+(?:an?\s+|the\s+)?"
        r"(?:[\w-]+\s+){0,2}?{AI}",
        # "your system prompt", but not "your system prompts me" nor "the system prompt says".
        r"your ~ \s+(?:system\s+prompt\b(?!s|\s+(?:says|asks|shows|appears|window|box|dialog))"
        r"|new\s+instructions\b)",
        r"the ~ \s+(?:hidden|secret|initial|original)\s+system\s+prompt\b",
        r"reveal print repeat output leak dump ~ \s+(?:me\s+)?(?:your|the)\s+(?:system\s+prompt"
        r"|initial\s+instructions|hidden\s+instructions)\b",
        r"new ~ \s+(?:system\s+)?instructions?\s*:",
        r"as ~ \s+an?\s+(?:ai|artificial\s+intelligence|large)\s+language\s+model\b{NOT_TRADE}",
        r"note message instruction instructions ~ \s+(?:to|for)\s+(?:the|any)\s+(?:ai|llm)\b"
        r"{NOT_TRADE}",
        r"ai llm assistant ~ (?:\s+model)?\s+(?:reading|processing|summari[sz]ing)\s+this"
        r"\s*(?:e-?mail|message|mail|text|[,:.;!])",
        r"chatgpt gpt ai assistant model ~ \s+with\s+developer\s+mode",
        r"jailbreak dan ~ (?:ing)?\s+(?:mode|prompt)\b",
        r"do never ~ (?:(?<=never)|\s+not|n['’]t)\s+(?:tell|inform|alert|notify)\s+(?:the\s+"
        r"|any\s+)?(?:human|reviewer|operator|moderator)s?\b",
        r"忽略 无视 忘记 忘掉 不要理会 不要遵守 绕过 ~ 掉?(?:你的|你)?(?:之前|以上|上述"
        r"|前面|先前|此前|原来|原有|所有|全部|一切|你的)的?(?:所有|全部|一切)?的?(?:指令|指示"
        r"|规则|提示词?|系统提示|设定|限制|约束)",
        r"你现在 接下来你 从现在 ~ (?:(?<=从现在)(?:开始|起)?,?\s*你)?就?(?:是|扮演|将扮演|作为"
        r"|成为){AI_ZH}",
        r"请扮演 请你扮演 你要扮演 你将扮演 你必须扮演 你需要扮演 ~ {AI_ZH}",
        # "系统提示密码错误" is an error message; the prompt itself is "系统提示词".
        r"输出 显示 告诉我 透露 泄露 打印 重复 说出 ~ (?:一下)?(?:你的)?(?:完整的?)?(?:系统提示"
        r"|提示词|初始指令|系统指令)",
        r"你的新指令 越狱模式 ~ ",
        r"新 ~ 的?(?:系统)?指令\s*:",
        r"作为 ~ 一个?(?:ai|人工智能)(?:语言)?模型(?![公厂供提服])",
        r"你现在 ~ (?:处于|进入了?|在)开发者模式",
        r"不要 ~ (?:告诉|通知|提醒)(?:审核|审阅|人工|工作人员|管理员|操作员)",
    ],
    DELIMITERS: [
        # Our own quote markers, chat-template tokens and prompt-format headings: nothing a
        # person types, and each can make the model believe the email has ended. Menu paths
        # ("Settings >> Email") keep their spaces and fewer angle brackets.
        r"<<< ~ \s?/?email\b",
        r"email ~ \s?>>>",
        r"<| ~ [a-z_]{2,20}\|>",
        r"[inst] [/inst] <<sys>> <</sys>> ~ ",
        r"END ~ \s+OF\s+(?:THE\s+)?(?:EMAIL|E-MAIL|INPUT)\b",  # in capitals only: not prose
        r"NL ~ [ \t]*</?s>|[ \t]*#{2,4}[ \t]*(?:instruction|response|human|assistant|input)s?"
        r"[ \t]*:|[ \t\-=#*\[\]<>()]*(?:end\s+of\s+(?:the\s+)?(?:customer\s+|user\s+)?"
        r"(?:email|e-mail|input|context)\b|邮件(?:内容|正文)?结束|用户输入结束)"
        r"[ \t\-=#*\[\]<>().]*$"
        # "System: Windows 11" is a bug report; "System: ignore ..." is a fake turn.
        r"|[ \t]*(?:system|系统)[ \t]*:[ \t]*(?:ignore|disregard|from\s+now|new\s+instructions"
        r"|you\s+are\s+now|忽略|你现在是)",
    ],
    OTHERS_DATA: [
        # A verb, someone else's people and a kind of data. "all users' data" of the
        # customer's own report, or "all users in our account", are theirs to ask about.
        r"include list reveal show send give tell share provide attach dump output print append "
        r"disclose leak paste ~ {VERB}(?:{OTHERS}{WHOSE}{DATA}|{ALL}{WHOSE}{PERSONAL}"
        r"|{DATA}\s+(?:of|for|from)\s+{OTHERS}|{PERSONAL}\s+(?:of|for|from)\s+{ALL}"
        r"|your\s+(?:customer|user|client)\s+(?:database|db|list|records|e-?mails|data)\b"
        r"|(?:admin(?:istrator)?|internal|system|database|stored|everyone['’]s)\s+"
        r"(?:passwords?|api\s+keys?|credentials|secrets?)\b)"
        r"|{VERB}(?<=your\s)(?:api\s+keys?|passwords|credentials|access\s+tokens?)\b"
        r"(?!\s+(?:polic|doc|requirement|reset|format|rule|guide))",
        r"列出 提供 发给 发送给 告诉 透露 泄露 附上 给出 公开 分享 给我 ~ [^。\n]{0,10}?"
        r"(?:(?:其他|其它|别的){DATA_ZH}|(?:所有|全部|每个|每位)的?(?:客户|用户|顾客|会员|买家)的?"
        r"(?:邮箱|电话|手机|联系方式|姓名|地址|密码|账号)|客户名单|用户名单|客户列表|用户列表"
        r"|(?:客户|用户)数据库|数据库(?:里|中)的?(?:所有|全部)?(?:客户|用户|数据|记录)"
        r"|(?:管理员|后台|数据库)的?(?:密码|账号|密钥)|你们的(?:api\s*)?密钥)",
        r"其他 其它 别的 ~ {DATA_ZH}[^。\n]{0,8}?{TO_ME}",
        r"客户名单 用户名单 ~ [^。\n]{0,8}?{TO_ME}",
    ],
    RECIPIENTS: [
        # A new destination for the reply: it has to name an address, or say "instead".
        # "please cc my colleague" and "抄送: a@b" (a quoted header) stay quiet.
        r"send forward deliver direct route address email mail ~ {MINE}\s+(?:(?:the|this|your"
        r"|all|a\s+copy\s+of\s+(?:the|this|your))\s+)?(?:repl(?:y|ies)|responses?|answers?"
        r"|draft)\s+(?:[\w-]+\s+){0,3}?(?:to|at)\s+{ADDR}",
        r"forward ~ {MINE}\s+(?:(?:the|this)\s+(?:email|message|thread|conversation)|this|it)"
        r"\s+to\s+[^.\n]{0,40}?{ADDR}",
        r"cc bcc ~ {MINE}\s+(?:[\w-]+\s+){0,4}?{ADDR}",
        r"add ~ \s+{ADDR}\s+(?:to|in|as)\s+(?:the\s+)?(?:b?cc|recipients?)\b",
        # Imperative only: "Replies to team@ reach us all" names another of the sender's own.
        r"reply respond answer ~ (?:\s+\w+){0,3}?\s+(?:to|at)\s+{ADDR}|\s+(?:only\s+)?to\s+"
        r"(?:(?:this|that|the\s+other)\s+(?:e-?mail\s+)?address\s+instead|(?:the\s+following"
        r"|a\s+different|another)\s+(?:e-?mail\s+)?address)\b",
        r"replies reply responses response answers answer ~ \s+(?:should|must)\s+(?:go|be\s+sent)"
        r"\s+to\s+{ADDR}",
        r"抄送 密送 转发 转寄 ~ (?:给|到|至)?\s*[^\s,。:;]{0,8}?{ADDR}",
        r"回复 回信 答复 这封邮件 此邮件 本邮件 ~ [^。\n]{0,6}?(?:发送|发|寄|转)(?:给|到|至)"
        r"\s*{ADDR}|(?:到|至|给)\s*{ADDR}|(?:到|至)(?:这个|以下|另一个|新的?)邮箱",
    ],
}


def _compile(trigger: str, rest: str) -> re.Pattern[str]:
    """``trigger`` then ``rest``, matched in lower-cased text unless the trigger has capitals."""
    for _ in range(3):  # pieces hold pieces
        rest = re.sub(r"\{([A-Z_]+)\}", lambda m: _PIECES.get(m[1], m[0]), rest)
    word = re.escape(trigger)
    # The trigger is a whole word: "account" holds no "cc", "adjust" no "just".
    guard = f"(?<![A-Za-z0-9_]{word})" if trigger.isascii() and trigger[0].isalpha() else ""
    return re.compile(f"{word}{guard}(?:{rest.replace('{T}', word)})", re.M)


_COMPILED = [
    (kind, _compile(trigger, rest), trigger != trigger.lower())
    for kind, rules in _RULES.items()
    for rule in rules
    for triggers, rest in [rule.split(" ~ ", 1)]
    for trigger in triggers.replace("NL", "\n").split(" ")
]
# A chat transcript: an assistant turn and a user turn, each at the start of a line.
_ASSISTANT_TURN = re.compile(r"\n[ \t]*(?:assistant|助手)[ \t]*:.*")
_USER_TURN = re.compile(r"\n[ \t]*(?:user|human|用户)[ \t]*:")


def detect_injection(text: str, html: str = "") -> list[str]:
    """Flags for prompt-injection signs in an email's ``text`` (what the model reads) and
    the ``html`` it came from (for text the customer cannot see); [] for ordinary mail."""
    text = text[:MAX_CHARS]
    flags = []
    if _CONTROL.search(text):
        hits = list(_CONTROL_IN_WORD.finditer(text))
        count = sum(len(hit.group()) for hit in hits)
        if count >= MIN_CONTROL_CHARS:
            around = text[max(0, hits[0].start() - 20) : hits[0].end() + 40]
            shown = _CONTROL.sub(lambda m: f"<U+{ord(m.group()):04X}>", around)
            flags.append(f"{CONTROL_CHARS} — {count} inside words: {_quote(shown)}")
    flags += _scan(text)
    if html:
        hidden, why = _hidden_text(html[:MAX_CHARS])
        if sum(ch.isalpha() for ch in hidden[:10_000]) >= MIN_HIDDEN_LETTERS:
            flags.append(f"{HIDDEN_TEXT} — text the customer cannot see ({why}): {_quote(hidden)}")
        flags += _scan(hidden, IN_HIDDEN) if hidden else []
    return flags


def flag_kind(flag: str) -> str:
    """The stable part of a flag, e.g. "prompt_injection: asks to change recipients"."""
    return flag.split(" — ", 1)[0]


def _scan(text: str, suffix: str = "") -> list[str]:
    """One flag per kind found in ``text``, quoting its first match and the rest of its line."""
    # NFKC folds full-width letters and punctuation ("ｉｇｎｏｒｅ", "：") into plain ones; the
    # leading newline lets line-start rules match the first line.
    text = "\n" + unicodedata.normalize("NFKC", _CONTROL.sub("", text))
    lower = text.lower()
    found: dict[str, re.Match[str] | None] = {}
    for kind, pattern, cased in _COMPILED:
        if found.get(kind) is None:
            found[kind] = pattern.search(text if cased else lower)
    if found[DELIMITERS] is None and _USER_TURN.search(lower):
        found[DELIMITERS] = _ASSISTANT_TURN.search(lower)
    flags = []
    for kind, match in found.items():
        if match is not None:
            # Quote the original capitals where lower-casing kept every position.
            source = text if len(text) == len(lower) else match.string
            rest = source[match.end() : match.end() + SNIPPET_CHARS].split("\n", 1)[0]
            flags.append(f"{kind}{suffix} — {_quote(source[match.start() : match.end()] + rest)}")
    return flags


def _quote(snippet: str) -> str:
    snippet = " ".join(snippet.split())
    if len(snippet) > SNIPPET_CHARS:
        snippet = snippet[: SNIPPET_CHARS - 1] + "…"
    return f"“{snippet}”"


# What drafts.mailtext drops with its content: invisible to the model as well as to people.
_UNREAD = {"script", "style", "head", "title", "template", "noscript", "xmp"}
_VOID = set("area base br col embed hr img input link meta source wbr".split())
# Open elements that a new one closes without an end tag, as browsers do.
_CLOSED_BY = {"p": {"p"}, "li": {"li", "p"}, "tr": {"tr", "td", "th", "p"}, "td": {"td", "th", "p"}}
_CLOSED_BY |= {"th": _CLOSED_BY["td"], **{tag: {"p"} for tag in ("div", "table", "ul", "ol")}}
_HINTS = re.compile(r"none|hidden|collapse|opacity|font-size|indent|left|transparent|color", re.I)
_STYLE_BACKGROUND = re.compile(r"<style[^>]*>[^<]*background", re.I)
_TINY_FONT = re.compile(r"0+(?:\.0*)?(?:px|pt|em|rem|%)?$|0*\.\d+(?:px|pt)$|1(?:\.0*)?(?:px|pt)$")
_ZERO = re.compile(r"0*\.?0+(?:px|%)?$")
_OFFSCREEN = re.compile(r"-\d{3,}")
_CLEAR = re.compile(r"transparent$|rgba\(.*,\s*(?:0|0?\.0+)\)$")
_HEX = re.compile(r"#([0-9a-f]{3}|[0-9a-f]{6})$")
_RGB_FUNCTION = re.compile(r"rgba?\((\d+),\s*(\d+),\s*(\d+)(?:,\s*([\d.]+))?\)$")
RGB = tuple[int, int, int]
_Open = tuple[str, str, RGB | None, RGB | None]  # tag, why hidden ("skip": unread), colours


class _HiddenText(HTMLParser):
    """Collects the text inside elements styled out of sight; each open element carries why
    it is hidden (or "") and its text and background colours, inherited from its parent."""

    def __init__(self, background: RGB | None) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[_Open] = [("", "", (0, 0, 0), background)]
        self.open: dict[str, int] = {}
        self.chunks: list[str] = []
        self.why = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:
            return
        closes = _CLOSED_BY.get(tag, ())
        while self.stack[-1][0] in closes:
            self._pop(len(self.stack) - 1)
        _, why, color, background = self.stack[-1]
        if tag in _UNREAD or why == "skip":
            why = "skip"
        elif attrs and not why:
            why, color, background = _looks(attrs, color, background)
        self.stack.append((tag, why, color, background))
        self.open[tag] = self.open.get(tag, 0) + 1

    def handle_endtag(self, tag: str) -> None:
        if self.open.get(tag):  # an end tag with nothing to close is ignored, as browsers do
            # From the top down: what is searched is then closed, so the work stays linear.
            index = next(i for i in reversed(range(len(self.stack))) if self.stack[i][0] == tag)
            self._pop(index)

    def handle_data(self, data: str) -> None:
        why = self.stack[-1][1]
        if why and why != "skip" and not data.isspace():
            self.chunks.append(data)
            self.why = self.why or why

    def _pop(self, index: int) -> None:
        for tag, *_ in self.stack[index:]:
            self.open[tag] -= 1
        del self.stack[index:]


def _hidden_text(html: str) -> tuple[str, str]:
    """(The text a text extractor reads but a person does not see, why it is hidden)."""
    if not _HINTS.search(html):
        return "", ""
    # A <style> block may paint a background we cannot follow: then no colour is known to
    # be the page's, and white text is not assumed to be on white.
    parser = _HiddenText(None if _STYLE_BACKGROUND.search(html) else (255, 255, 255))
    parser.feed(html)
    parser.close()
    return " ".join(" ".join(parser.chunks).split()), parser.why


def _looks(
    attrs: list[tuple[str, str | None]], color: RGB | None, background: RGB | None
) -> tuple[str, RGB | None, RGB | None]:
    """(Why an element's own attributes hide its text or "", its text and background colour)."""
    values = dict(attrs)
    style: dict[str, str] = {}
    for item in (values.get("style") or "").lower().split(";"):
        name, _, value = item.partition(":")
        style[name.strip()] = value.replace("!important", "").strip()
    own_color = _rgb(style.get("color") or values.get("color") or "")
    paint = style.get("background-color") or style.get("background", "").split(" ")[0]
    own_background = _rgb(paint or values.get("bgcolor") or "")
    color, background = own_color or color, own_background or background
    why = "hidden attribute" if "hidden" in values else _hides(style) if style else ""
    if not why and (own_color or own_background) and _same(color, background):
        why = "text colour same as background"
    return why, color, background


def _hides(style: dict[str, str]) -> str:
    """Why an element's style keeps its text out of sight, or ""."""
    if style.get("display") == "none":
        return "display:none"
    if style.get("visibility") in ("hidden", "collapse"):
        return "visibility:hidden"
    if _ZERO.match(style.get("opacity", "1")):
        return "opacity:0"
    if _TINY_FONT.match(style.get("font-size", "-")):
        return "font-size:0"
    if style.get("overflow") == "hidden" and _ZERO.match(style.get("max-height", "-")):
        return "height:0"  # the "preview text" trick of marketing mail, too
    if any(_OFFSCREEN.match(style.get(name, "")) for name in ("left", "top", "text-indent")):
        return "off-screen"
    return "transparent text" if _CLEAR.match(style.get("color", "")) else ""


def _rgb(value: str) -> RGB | None:
    value = value.strip().lower()
    named = {"white": "#ffffff", "black": "#000000"}.get(value, value)
    if hexa := _HEX.match(named):
        digits = hexa[1] if len(hexa[1]) == 6 else "".join(c * 2 for c in hexa[1])
        return int(digits[:2], 16), int(digits[2:4], 16), int(digits[4:], 16)
    rgb = _RGB_FUNCTION.match(value)
    return (int(rgb[1]), int(rgb[2]), int(rgb[3])) if rgb and rgb[4] not in ("0", "0.0") else None


def _same(color: RGB | None, background: RGB | None) -> bool:
    """Colours too close for a person to tell apart (#fefefe on #ffffff counts)."""
    if color is None or background is None:
        return False
    return sum(abs(a - b) for a, b in zip(color, background, strict=True)) < 24

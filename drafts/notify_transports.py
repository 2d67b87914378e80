"""How each chat tool wants its message, and the message itself in English or Chinese.

One class per transport, chosen from `drafts.notify.TRANSPORTS` (dotted paths, as in
healthchecks' hc/api/transports.py). ``send`` posts once and returns the server's answer, or
raises `TransportError`; retrying is the notification's business, not the transport's.

- DingTalk custom robot: markdown; with a 加签 secret, ``&timestamp=<ms>&sign=<sign>`` is
  added to the URL, sign = urlencode(base64(HMAC-SHA256(key=secret, "timestamp\\nsecret"))).
  DingTalk answers HTTP 200 even when it refuses: ``errcode`` ≠ 0 is a failure.
- WeCom group robot: markdown (at most 4096 bytes), the key in the URL; ``errcode`` likewise.
- Webhook: the notification's payload as JSON with ``sent_at``, signed:
  ``X-ReplyHub-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed by the secret>``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils import timezone

from inference.drafting import INTENTS

if TYPE_CHECKING:
    from drafts.notify import Notification, NotificationChannel

MAX_ANSWER_BYTES = 64 * 1024
WECOM_MAX_BYTES = 4096


class TransportError(Exception):
    """The chat server did not take the message (no answer, an HTTP error, errcode ≠ 0)."""


# -- HTTP ---------------------------------------------------------------------------------


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A robot URL that redirects is a wrong URL: say so instead of re-posting elsewhere."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def post_json(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """POST ``body`` (JSON) to ``url``; the status and the answer's text for a 2xx answer,
    otherwise TransportError naming what went wrong. Waits REPLYHUB_NOTIFY_TIMEOUT seconds
    at most for the connection and for each read."""
    timeout = settings.REPLYHUB_NOTIFY_TIMEOUT
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "ReplyHub-notifications",
            **(headers or {}),
        },
    )
    host = urllib.parse.urlsplit(url).netloc
    try:
        with _opener.open(request, timeout=timeout) as response:
            return response.status, _text(response.read(MAX_ANSWER_BYTES))
    except urllib.error.HTTPError as exc:
        raise TransportError(f"{host} answered HTTP {exc.code}: {_text(exc.read(500))}") from exc
    except TimeoutError as exc:
        raise TransportError(f"{host} sent no answer within {timeout} s") from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise TransportError(f"{host} did not accept a connection within {timeout} s") from exc
        raise TransportError(f"could not reach {host}: {exc.reason}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise TransportError(f"{host}: {type(exc).__name__}: {exc}") from exc


def _text(raw: bytes) -> str:
    return " ".join(raw.decode("utf-8", "replace").split())[:1000]


def url_problem(kind: str, url: str) -> str | None:
    """What is wrong with ``url`` for a channel of ``kind``, in words; None if nothing."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return "Use an https:// (or http://) address."
    query = urllib.parse.parse_qs(parts.query)
    if kind == "dingtalk":
        if "access_token" not in query:
            return (
                "A DingTalk robot URL contains ?access_token=…: copy the robot's whole "
                "Webhook address."
            )
        if "sign" in query or "timestamp" in query:
            return "Remove timestamp= and sign= from the URL: ReplyHub signs each request."
    if kind == "wecom" and "key" not in query:
        return "A WeCom robot URL contains ?key=…: copy the robot's whole webhook address."
    return None


def dingtalk_sign(secret: str, timestamp: str) -> str:
    """DingTalk's 加签: urlencode(base64(HMAC-SHA256 keyed by the secret of
    "timestamp\\nsecret")), timestamp in milliseconds."""
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(digest))


def webhook_signature(secret: str, body: bytes) -> str:
    """The X-ReplyHub-Signature header's value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


# -- transports ---------------------------------------------------------------------------


class Transport:
    """Delivers a notification to one channel."""

    def __init__(self, channel: NotificationChannel) -> None:
        self.channel = channel

    def send(self, notification: Notification) -> str:
        """Post once; the server's answer, or TransportError."""
        raise NotImplementedError


class ChatRobot(Transport):
    """A group robot: markdown in, HTTP 200 with ``{"errcode": 0}`` out."""

    name = "chat server"

    def url(self) -> str:
        return self.channel.url

    def message(self, title: str, text: str) -> dict:
        raise NotImplementedError

    def send(self, notification: Notification) -> str:
        title, text = compose(notification)
        body = json.dumps(self.message(title, text), ensure_ascii=False).encode()
        status, answer = post_json(self.url(), body)
        try:
            result = json.loads(answer)
            errcode = result["errcode"]
        except (ValueError, KeyError, TypeError) as exc:
            raise TransportError(f"not a {self.name} answer (HTTP {status}): {answer}") from exc
        if errcode != 0:
            raise TransportError(f"{self.name} refused: errcode {errcode}: {result.get('errmsg')}")
        return f"HTTP {status} {answer[:200]}"


class DingTalk(ChatRobot):
    name = "DingTalk"

    def url(self) -> str:
        url, secret = self.channel.url, self.channel.secret
        if not secret:
            return url
        timestamp = str(round(time.time() * 1000))
        separator = "&" if urllib.parse.urlsplit(url).query else "?"
        return f"{url}{separator}timestamp={timestamp}&sign={dingtalk_sign(secret, timestamp)}"

    def message(self, title: str, text: str) -> dict:
        return {"msgtype": "markdown", "markdown": {"title": title, "text": text}}


class WeCom(ChatRobot):
    name = "WeCom"

    def message(self, title: str, text: str) -> dict:
        content = text.encode()[:WECOM_MAX_BYTES].decode("utf-8", "ignore")
        return {"msgtype": "markdown", "markdown": {"content": content}}


class Webhook(Transport):
    """The payload as JSON, signed with the channel's secret; any 2xx answer is success."""

    def send(self, notification: Notification) -> str:
        title, text = compose(notification)
        sent_at = timezone.now()
        body = json.dumps(
            {**notification.payload, "title": title, "text": text, "sent_at": sent_at.isoformat()},
            ensure_ascii=False,
        ).encode()
        headers = {
            "X-ReplyHub-Event": notification.event,
            "X-ReplyHub-Delivery": str(notification.pk),
            "X-ReplyHub-Timestamp": str(int(sent_at.timestamp())),
            "X-ReplyHub-Signature": webhook_signature(self.channel.secret, body),
        }
        status, answer = post_json(self.channel.url, body, headers)
        return f"HTTP {status} {answer[:200]}"


# -- the words ----------------------------------------------------------------------------

# English nouns for "2 complaints, 1 inquiry"; Chinese uses the intent's label and 封.
NOUNS_EN = {
    "inquiry": ("inquiry", "inquiries"),
    "complaint": ("complaint", "complaints"),
    "partnership": ("partnership proposal", "partnership proposals"),
    "technical_support": ("technical support request", "technical support requests"),
    "demo_booking": ("demo booking", "demo bookings"),
    "other": ("other email", "other emails"),
    "unclassified": ("unclassified email", "unclassified emails"),
}
LABELS_ZH = {key: chinese for key, (_, chinese) in INTENTS.items()} | {"unclassified": "未分类"}


def _plain(value: object, limit: int = 300) -> str:
    """A customer's or a server's words inside markdown: one line, no links or tags of theirs."""
    text = " ".join(str(value).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.translate(str.maketrans({"[": "［", "]": "］", "<": "‹", ">": "›", "`": "'"}))


def _count_en(intent: str, n: int) -> str:
    singular, plural = NOUNS_EN.get(intent, (intent, intent))
    return f"{n} {singular if n == 1 else plural}"


def _busiest_first(counts: dict[str, int]) -> list[tuple[str, int]]:
    """Intents by count, ties in the usual intent order: the stored payload's key order
    is not kept (PostgreSQL's jsonb sorts keys)."""
    order = {intent: n for n, intent in enumerate(INTENTS)}
    return sorted(counts.items(), key=lambda kv: (-kv[1], order.get(kv[0], len(order)), kv[0]))


def _drafts_ready(p: dict, address: str, zh: bool) -> tuple[str, list[str]]:
    total, counts, url = p["total"], _busiest_first(p["counts"]), p["url"]
    if zh:
        parts = "、".join(f"{LABELS_ZH.get(k, _plain(k))} {n} 封" for k, n in counts)
        title = f"ReplyHub：{address} 有 {total} 封新草稿待审核"
        return title, [f"#### {title}", f"{parts}。", f"[打开审核队列]({url})"]
    parts = ", ".join(_count_en(k, n) for k, n in counts)
    title = f"ReplyHub: {total} new {'draft' if total == 1 else 'drafts'} in {address}"
    return title, [f"#### {title}", f"{parts}.", f"[Open the review queue]({url})"]


def _send_failed(p: dict, address: str, zh: bool) -> tuple[str, list[str]]:
    d = p["draft"]
    uncertain = d["state"] == "uncertain"
    values = (address, _plain(d["subject"], 200), _plain(d["recipient"]), _plain(d["error"], 500))
    if zh:
        title = "ReplyHub：回复投递结果不确定" if uncertain else "ReplyHub：回复发送失败"
        labels, colon = ("邮箱", "主题", "收件人", "服务器返回"), "："
        note = "客户可能已收到：请在草稿页确认已送达，或重新发送。"
        link = f"[打开草稿]({d['url']})"
    else:
        title = "ReplyHub: a reply " + (
            "may not have been delivered" if uncertain else "could not be sent"
        )
        labels, colon = ("Mailbox", "Subject", "To", "Server said"), ":"
        note = "The customer may already have it: confirm or send it again on the draft page."
        link = f"[Open the draft]({d['url']})"
    lines = [f"#### {title}"]
    lines += [f"**{label}{colon}** {value}" for label, value in zip(labels, values, strict=True)]
    return title, [*lines, note, link] if uncertain else [*lines, link]


def _queue_over(p: dict, address: str, zh: bool) -> tuple[str, list[str]]:
    waiting, threshold, url = p["waiting"], p["threshold"], p["url"]
    if zh:
        title = "ReplyHub：待审核队列超过阈值"
        said = f"**{address}** 有 {waiting} 封草稿待审核（阈值 {threshold}）。"
        return title, [f"#### {title}", said, f"[打开审核队列]({url})"]
    title = "ReplyHub: review queue over the threshold"
    said = f"**{address}** has {waiting} drafts awaiting review (threshold {threshold})."
    return title, [f"#### {title}", said, f"[Open the review queue]({url})"]


def _drafts_due(p: dict, address: str, zh: bool) -> tuple[str, list[str]]:
    total, minutes, url = p["total"], p["warning_minutes"], p["url"]
    rows = []
    for d in p["drafts"]:
        due = timezone.localtime(datetime.fromisoformat(d["due_at"]))
        subject = _plain(d["subject"], 120) or ("（无主题）" if zh else "(no subject)")
        rows.append(f"- [{subject}]({d['url']}) · {due:%m-%d %H:%M}")
    more = total - len(p["drafts"])
    if zh:
        title = (
            f"ReplyHub：{address} 有 {total} 封邮件将在 {minutes} 分钟内到期"
            if minutes
            else f"ReplyHub：{address} 有 {total} 封邮件已超过答复时限"
        )
        tail = [f"另有 {more} 封。"] if more > 0 else []
        return title, [f"#### {title}", *rows, *tail, f"[按到期时间打开审核队列]({url})"]
    emails = "email" if total == 1 else "emails"
    title = (
        f"ReplyHub: {total} {emails} in {address} due within {minutes} minutes"
        if minutes
        else f"ReplyHub: {total} {emails} in {address} past their reply target"
    )
    tail = [f"And {more} more."] if more > 0 else []
    return title, [f"#### {title}", *rows, *tail, f"[Open the queue, due soonest first]({url})"]


def _test(p: dict, address: str, zh: bool) -> tuple[str, list[str]]:
    if zh:
        title = "ReplyHub：测试消息"
        said = f"通道配置正确：{address} 的通知会发到这里。"
        return title, [f"#### {title}", said, f"[打开审核队列]({p['url']})"]
    title = "ReplyHub: test message"
    said = f"This channel works: notifications about {address} will arrive here."
    return title, [f"#### {title}", said, f"[Open the review queue]({p['url']})"]


COMPOSERS = {
    "drafts_ready": _drafts_ready,
    "send_failed": _send_failed,
    "queue_over_threshold": _queue_over,
    "drafts_due": _drafts_due,
    "test": _test,
}


def compose(notification: Notification) -> tuple[str, str]:
    """The message's title and markdown text, in the channel's language."""
    payload = notification.payload
    zh = notification.channel.language.startswith("zh")
    title, lines = COMPOSERS[notification.event](payload, _plain(payload["mailbox"]["address"]), zh)
    # DingTalk's markdown breaks lines only at blank lines; WeCom's takes them as well.
    return title, "\n\n".join(lines)

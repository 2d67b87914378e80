"""Callbacks: when a draft submitted through the API is ready (or its generation failed),
its JSON is POSTed to the URL the submitter gave.

    pending ──► delivering ──► delivered
       ▲            │
       │            ├──► retry (no answer, or not a 2xx) ──► delivering …
       │            └──► failed (REPLYHUB_API_CALLBACK_ATTEMPTS used up, or token revoked)
       └──────────── a draft still waiting for the model stays pending

The body is signed with the token's signing secret: ``X-ReplyHub-Signature: sha256=<hex>``
is the HMAC-SHA256 of the exact body bytes. Delivery runs as a django-q2 task queued when
the worker finishes the draft, so it never holds up drafting; a sweep every minute retries
due callbacks with backoff and picks up deliveries whose worker died. Claims are
conditional UPDATEs, so two tasks for one callback deliver once (a worker that dies
mid-request may lead to a second delivery: receivers deduplicate on X-ReplyHub-Delivery).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request
from datetime import timedelta

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy

from drafts.api.tokens import ApiToken
from drafts.models import Draft

log = logging.getLogger(__name__)

# Waits before the 1st, 2nd, … retry; the last repeats.
BACKOFF_SECONDS = [60, 300, 900, 3600, 3 * 3600, 6 * 3600]
UNFINISHED = (Draft.QUEUED, Draft.GENERATING)


class ApiCallback(models.Model):
    """A URL to POST a submitted email's draft to, once the model has finished it."""

    PENDING, DELIVERING, DELIVERED = "pending", "delivering", "delivered"
    RETRY, FAILED = "retry", "failed"
    STATES = [
        (PENDING, gettext_lazy("Waiting for the draft")),
        (DELIVERING, gettext_lazy("Delivering")),
        (DELIVERED, gettext_lazy("Delivered")),
        (RETRY, gettext_lazy("Failed for now; will retry")),
        (FAILED, gettext_lazy("Failed")),
    ]

    draft = models.ForeignKey(Draft, on_delete=models.CASCADE, related_name="api_callbacks")
    token = models.ForeignKey(ApiToken, on_delete=models.CASCADE, related_name="callbacks")
    url = models.URLField(max_length=2000)
    base_url = models.CharField(
        max_length=1000, help_text="Scheme and host the submitter used; links in the body use it."
    )
    state = models.CharField(max_length=10, choices=STATES, default=PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    delivering_since = models.DateTimeField(null=True, blank=True)
    last_status = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = "API callback"

    def __str__(self) -> str:
        return f"{self.url} for draft {self.draft_id} ({self.state})"

    def claim(self) -> bool:
        """Take a due callback for delivery; False if another task has it or it is not due."""
        now = timezone.now()
        claimed = ApiCallback.objects.filter(
            pk=self.pk, state__in=[self.PENDING, self.RETRY], next_attempt_at__lte=now
        ).update(state=self.DELIVERING, attempts=F("attempts") + 1, delivering_since=now)
        self.refresh_from_db()
        return bool(claimed)

    def _finish(self, **changes: object) -> None:
        ApiCallback.objects.filter(pk=self.pk, state=self.DELIVERING).update(
            delivering_since=None, **changes
        )
        self.refresh_from_db()

    def delivered(self, status: int) -> None:
        self._finish(
            state=self.DELIVERED, delivered_at=timezone.now(), last_status=status, last_error=""
        )

    def failed_for_now(self, error: str, status: int | None = None) -> None:
        """Retry later with backoff; after the last attempt, failed for good."""
        if self.attempts >= settings.REPLYHUB_API_CALLBACK_ATTEMPTS:
            self._finish(
                state=self.FAILED,
                last_status=status,
                last_error=f"{error} (gave up after {self.attempts} attempts)"[:2000],
            )
            return
        delay = BACKOFF_SECONDS[min(self.attempts, len(BACKOFF_SECONDS)) - 1]
        self._finish(
            state=self.RETRY,
            last_status=status,
            last_error=error[:2000],
            next_attempt_at=timezone.now() + timedelta(seconds=delay),
        )


def register(draft: Draft, token: ApiToken, url: str, base_url: str) -> ApiCallback:
    """Call ``url`` when ``draft`` is finished; at once if it is finished already.

    Made in the submission's transaction, so a worker never finishes the draft before the
    callback exists; the check after it covers drafts the worker finished earlier (a
    duplicate submission of an email drafted long ago).
    """
    callback = ApiCallback.objects.create(
        draft=draft, token=token, url=url, base_url=base_url[:1000]
    )
    if Draft.objects.filter(pk=draft.pk).exclude(status__in=UNFINISHED).exists():
        enqueue(callback)
    return callback


def enqueue(callback: ApiCallback) -> None:
    """Queue the delivery task for the I/O workers, so that none runs it before the
    callback is committed (drafts.tasks.enqueue_io)."""
    from drafts.tasks import enqueue_io  # drafts.tasks imports this module

    enqueue_io("drafts.api.callbacks.deliver_callback", callback.pk)


def notify_finished(draft_ids: list[int]) -> None:
    """The worker finished these drafts (ready or failed): queue their callbacks.

    Never raises: a callback must not fail the drafting that triggered it.
    """
    try:
        for callback in ApiCallback.objects.filter(
            draft_id__in=draft_ids, state=ApiCallback.PENDING
        ):
            enqueue(callback)
    except Exception:
        log.exception("Queueing callbacks for drafts %s failed", draft_ids)


def signature(secret: str, body: bytes) -> str:
    """The X-ReplyHub-Signature header value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def payload(callback: ApiCallback) -> tuple[str, bytes]:
    """The event and the body: the event, the delivery's id and the draft as
    GET /api/v1/drafts/<id> returns it."""
    from drafts.api.serialize import draft_json, drafts_with_relations

    draft = drafts_with_relations(Draft.objects.filter(pk=callback.draft_id), history=True).get()
    event = "draft.failed" if draft.status == Draft.FAILED else "draft.ready"
    data = {
        "event": event,
        "delivery": callback.pk,
        "draft": draft_json(callback.base_url, draft, history=True),
    }
    return event, json.dumps(data, cls=DjangoJSONEncoder, ensure_ascii=False).encode()


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect would turn the POST into a GET elsewhere: count it as a failure."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects)


UNREADABLE_SECRET = (
    "the token's signing secret can no longer be read (SECRET_KEY changed and the old key is "
    "not in SECRET_KEY_FALLBACKS): create a new token"
)


def deliver_callback(callback_id: int) -> str:
    """The task: POST the finished draft to the callback's URL, once."""
    callback = ApiCallback.objects.select_related("token", "draft").filter(pk=callback_id).first()
    if callback is None:
        return "skipped: no such callback"
    if callback.draft.status in UNFINISHED:
        return "skipped: the draft is not finished"  # regenerating: its task will call again
    if not callback.claim():
        return "skipped: not due, or delivered by another task"
    if not callback.token.active:
        callback._finish(state=ApiCallback.FAILED, last_error="the token was revoked")
        return "failed: token revoked"
    if not callback.token.signing_secret_readable:
        callback._finish(state=ApiCallback.FAILED, last_error=UNREADABLE_SECRET)
        return "failed: signing secret unreadable"
    event, body = payload(callback)
    request = urllib.request.Request(
        callback.url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "ReplyHub-Callback/1",
            "X-ReplyHub-Event": event,
            "X-ReplyHub-Delivery": str(callback.pk),
            "X-ReplyHub-Signature": signature(callback.token.signing_secret, body),
        },
    )
    try:
        with _opener.open(request, timeout=settings.REPLYHUB_API_CALLBACK_TIMEOUT) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status, error = exc.code, f"HTTP {exc.code} {exc.reason}"
    except (OSError, ValueError) as exc:  # refused, timed out, bad URL, TLS
        status, error = None, f"{type(exc).__name__}: {exc}"
    else:
        error = "" if 200 <= status < 300 else f"HTTP {status}"
    if not error:
        callback.delivered(status)
        log.info(
            "Callback %s for draft %s delivered to %s", callback.pk, callback.draft_id, callback.url
        )
        return "delivered"
    callback.failed_for_now(error, status)
    log.warning(
        "Callback %s for draft %s to %s failed (attempt %d): %s",
        *(callback.pk, callback.draft_id, callback.url, callback.attempts, error),
    )
    return f"{callback.state}: {error}"


def sweep_callbacks() -> str:
    """Every minute: queue due retries, and callbacks whose delivering worker died."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.REPLYHUB_API_CALLBACK_TIMEOUT * 2 + 60)
    revived = ApiCallback.objects.filter(
        state=ApiCallback.DELIVERING, delivering_since__lt=stale
    ).update(state=ApiCallback.RETRY, delivering_since=None, next_attempt_at=now)
    due = ApiCallback.objects.filter(
        Q(state=ApiCallback.RETRY, next_attempt_at__lte=now)
        # A pending callback's own task runs when its draft is finished; one still pending a
        # minute after that lost its task.
        | Q(state=ApiCallback.PENDING, draft__updated_at__lte=now - timedelta(minutes=1))
    ).exclude(draft__status__in=UNFINISHED)
    queued = 0
    for callback in due:
        enqueue(callback)
        queued += 1
    return f"{revived} revived, {queued} queued"

"""Prometheus metrics at /metrics, counted from the database when Prometheus asks.

The web server and the workers are separate processes (several of each, on several
machines), so counters kept in one process's memory would each tell a different part of
the story. Everything here is read from the database at scrape time instead, by one
custom collector: grouped COUNTs over indexed columns, so a scrape costs about the same
at 100,000 drafts as at 100 (docs/operations.md has the figures). Windowed figures (the
latency of drafts, the model's tokens per second) cover the drafts that became ready in
the last hour, found through the index on ``Draft.ready_at``.
"""

from __future__ import annotations

import hmac
import logging
from bisect import bisect_right
from collections.abc import Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, FloatField, QuerySet, Value
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    Metric,
)

from drafts.daily import EpochSeconds
from drafts.health import WorkerHeartbeat
from drafts.models import Draft, Mailbox, Message, ReviewEvent
from drafts.outbox import Outbox

log = logging.getLogger(__name__)

WINDOW = timedelta(hours=1)
# Upper bounds, in seconds, of the latency buckets: a draft on a CPU takes tens of seconds,
# a batch on a GPU a few; the wait from arrival to a ready draft can reach many minutes.
GENERATION_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600)
WAIT_BUCKETS = (5, 10, 30, 60, 120, 300, 600, 1800, 3600)


def _counts(queryset: QuerySet, field: str) -> dict[object, int]:
    """``{value of field: rows}`` in one grouped COUNT (order_by() keeps GROUP BY clean).

    COUNT(*), not COUNT(id): PostgreSQL then answers from the index alone.
    """
    rows = queryset.values(field).annotate(n=Count("*")).order_by()
    return {row[field]: row["n"] for row in rows}


def _per_choice(family: Metric, queryset: QuerySet, field: str, choices: list) -> Metric:
    """``family`` with one sample per choice of ``field``, zero for a choice with no rows."""
    counts = _counts(queryset, field)
    for value, _label in choices:
        family.add_metric([value], counts.get(value, 0))
    return family


def messages_ingested() -> Iterator[Metric]:
    """Customer emails stored per mailbox (not the copies of replies we sent)."""
    names = dict(Mailbox.objects.values_list("pk", "name"))
    counts = _counts(Message.objects.filter(direction=Message.INBOUND), "mailbox_id")
    family = CounterMetricFamily(
        "replyhub_messages_ingested", "Customer emails stored, per mailbox.", labels=["mailbox"]
    )
    for pk, name in sorted(names.items(), key=lambda item: item[1]):
        family.add_metric([name], counts.get(pk, 0))
    yield family


def drafts() -> Iterator[Metric]:
    """Drafts by status now, and how many the model has written so far."""
    family = GaugeMetricFamily(
        "replyhub_drafts",
        "Drafts by status now: queued and generating wait for the model, ready for a reviewer.",
        labels=["status"],
    )
    yield _per_choice(family, Draft.objects.all(), "status", Draft.STATUSES)
    yield CounterMetricFamily(
        "replyhub_drafts_generated",
        "Drafts the model has written (each counted once, however often regenerated).",
        value=Draft.objects.filter(ready_at__isnull=False).count(),
    )


def overdue_drafts(now: datetime) -> Iterator[Metric]:
    """Emails past their mailbox's reply target and still not answered (an alert's input)."""
    yield GaugeMetricFamily(
        "replyhub_drafts_overdue",
        "Drafts not yet approved or rejected whose email is past its reply target.",
        value=Draft.objects.overdue(now).count(),
    )


def _seconds(key: str) -> Coalesce:
    """One of the draft's recorded model timings, in SQL: seconds, 0 when missing."""
    return Coalesce(Cast(KT(f"timings__{key}"), FloatField()), Value(0.0))


def _histogram(values: list[float], bounds: tuple[int, ...]) -> list[tuple[str, float]]:
    """Cumulative bucket counts of ``values`` for the upper ``bounds``, then +Inf."""
    ordered = sorted(values)
    return [(str(b), bisect_right(ordered, b)) for b in bounds] + [("+Inf", len(ordered))]


def recent_drafts(now: datetime) -> Iterator[Metric]:
    """Latency and model speed of the drafts that became ready within the last WINDOW.

    The model's time for a draft is what the engine recorded (intent + analysis + reply);
    in a batch each draft records the batch's time, so speed divides it by the batch size.
    The database works out four numbers per draft (through the index on ready_at); the
    buckets are counted here, which costs less than one SQL filter per bucket.
    """
    rows = list(
        Draft.objects.filter(ready_at__gte=now - WINDOW)
        .annotate(
            model_s=_seconds("intent_s") + _seconds("analysis_s") + _seconds("reply_s"),
            wait_s=EpochSeconds("ready_at") - EpochSeconds("created_at"),
            batch=Coalesce(Cast(KT("timings__batch_size"), FloatField()), Value(1.0)),
        )
        .values_list("model_s", "wait_s", "completion_tokens", "batch")
    )
    model = [row[0] for row in rows]
    # To the millisecond: SQLite's julianday() carries ~50 µs of float noise, which put a
    # wait of exactly 30 s over the 30 s bucket's bound now and then.
    wait = [max(round(row[1], 3), 0.0) for row in rows]
    yield GaugeHistogramMetricFamily(
        "replyhub_draft_generation_seconds",
        "The model's time per draft, over the drafts ready in the last hour.",
        buckets=_histogram(model, GENERATION_BUCKETS),
        gsum_value=sum(model),
    )
    yield GaugeHistogramMetricFamily(
        "replyhub_draft_wait_seconds",
        "From an email's arrival to its draft being ready, over the drafts ready in the last hour.",
        buckets=_histogram(wait, WAIT_BUCKETS),
        gsum_value=sum(wait),
    )
    timed = [(tokens, seconds / max(batch, 1.0)) for seconds, _, tokens, batch in rows if tokens]
    busy = sum(seconds for _, seconds in timed)
    yield GaugeMetricFamily(
        "replyhub_model_tokens_per_second",
        "Tokens the model wrote per second of its time, over the drafts ready in the last hour "
        "(a batch's time counted once); 0 when there were none.",
        value=sum(tokens for tokens, _ in timed) / busy if busy > 0 else 0.0,
    )


def review_decisions() -> Iterator[Metric]:
    """ReviewEvents by action: what reviewers, and the sending, did to drafts."""
    family = CounterMetricFamily(
        "replyhub_review_actions",
        "What reviewers (and the sending) did to drafts, by action: approve, reject, edit…",
        labels=["action"],
    )
    yield _per_choice(family, ReviewEvent.objects.all(), "action", ReviewEvent.ACTIONS)


def sends() -> Iterator[Metric]:
    """Approved replies by delivery state (the outbox)."""
    family = GaugeMetricFamily(
        "replyhub_outbox_replies",
        "Approved replies by delivery state: sent, queued, retry, failed, uncertain, sending.",
        labels=["state"],
    )
    yield _per_choice(family, Outbox.objects.all(), "state", Outbox.STATES)


def task_queue() -> Iterator[Metric]:
    """Tasks waiting in the broker, per queue (the model workers', the I/O workers'); left
    out, not an error, when the broker cannot be reached."""
    from django_q.brokers import get_broker
    from django_q.conf import Conf

    family = GaugeMetricFamily(
        "replyhub_task_queue_length", "Background tasks waiting for a worker.", labels=["queue"]
    )
    for queue in filter(None, (Conf.CLUSTER_NAME, settings.REPLYHUB_IO_QUEUE)):
        try:
            length = get_broker(queue).queue_size()
        except Exception as exc:  # Redis down: /readyz says so; the other metrics still count
            log.warning("Metrics: cannot read the task queue's length: %s", exc)
            return
        family.add_metric([queue], length or 0)
    yield family


def workers(now: datetime) -> Iterator[Metric]:
    """The workers' heartbeats (drafts.health): how many report, with their model."""
    stale = now - timedelta(seconds=settings.REPLYHUB_WORKER_STALE_SECONDS)
    recent = WorkerHeartbeat.objects.filter(seen_at__gte=stale)
    yield GaugeMetricFamily(
        "replyhub_workers",
        "Worker processes that reported within REPLYHUB_WORKER_STALE_SECONDS.",
        value=recent.count(),
    )
    yield GaugeMetricFamily(
        "replyhub_workers_with_model",
        "Of those, the ones with their model loaded.",
        value=recent.filter(model_loaded=True).count(),
    )
    if settings.REPLYHUB_IO_QUEUE:
        yield GaugeMetricFamily(
            "replyhub_io_workers",
            "Of those, the I/O workers (sending, notifications, callbacks, IMAP polling).",
            value=recent.filter(queue=settings.REPLYHUB_IO_QUEUE).count(),
        )
    newest = WorkerHeartbeat.objects.order_by("-seen_at").values_list("seen_at", flat=True).first()
    if newest is not None:
        yield GaugeMetricFamily(
            "replyhub_worker_heartbeat_age_seconds",
            "Seconds since a worker last reported.",
            value=(now - newest).total_seconds(),
        )


class ReplyHubCollector:
    """Every ReplyHub metric, counted from the database at each scrape."""

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        yield from messages_ingested()
        yield from drafts()
        yield from overdue_drafts(now)
        yield from recent_drafts(now)
        yield from review_decisions()
        yield from sends()
        yield from task_queue()
        yield from workers(now)


def exposition() -> bytes:
    """The metrics in Prometheus's text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ReplyHubCollector())
    return generate_latest(registry)


def _authorized(request: HttpRequest) -> bool:
    token = settings.REPLYHUB_METRICS_TOKEN
    if not token:
        return True
    given = request.headers.get("Authorization", "")
    return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """/metrics for Prometheus; with REPLYHUB_METRICS_TOKEN set, only with that bearer token."""
    if not _authorized(request):
        response = HttpResponse(
            "Unauthorized: /metrics needs the header "
            "Authorization: Bearer <REPLYHUB_METRICS_TOKEN>\n",
            status=401,
            content_type="text/plain; charset=utf-8",
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)

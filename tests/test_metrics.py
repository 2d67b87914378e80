"""Prometheus metrics at /metrics (drafts/metrics.py), counted from the database."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_q.brokers import get_broker
from prometheus_client.parser import text_string_to_metric_families

from drafts import tasks
from drafts.ingest import ingest_message
from drafts.models import Draft, Mailbox, Message
from drafts.outbox import Outbox
from drafts.sending import send_outbox
from tests.conftest import mail_bytes, make_ready_draft
from tests.test_inference import ScriptedBackend

Samples = dict[str, dict[frozenset, float]]


def scrape(client, **headers: str) -> Samples:
    """GET /metrics and parse it as Prometheus does: {sample name: {labels: value}}."""
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[name][frozenset(labels.items())]


@pytest.fixture
def scripted_model(monkeypatch, settings) -> None:
    """A stand-in model: the drafting pipeline runs for real, one draft per task."""
    settings.REPLYHUB_BATCH_SIZE = 1
    monkeypatch.setattr(tasks, "configured_backend", lambda: ScriptedBackend(['{"product": ""}']))


def draft_all_queued() -> None:
    for pk in Draft.objects.filter(status=Draft.QUEUED).values_list("pk", flat=True):
        assert tasks.generate_draft(pk).startswith("ready")


def test_the_metrics_count_ingested_drafted_reviewed_and_sent_mail(
    client, mailbox, alice, smtp_server, scripted_model
):
    sales = Mailbox.objects.create(name="sales", address="sales@acme.example")
    for name in ("inquiry_en.eml", "chinese_gb2312.eml", "with_attachment.eml", "newsletter.eml"):
        ingest_message(mailbox, mail_bytes(name))
    ingest_message(sales, mail_bytes("inquiry_en.eml"))
    assert Draft.objects.count() == 4  # the newsletter gets none

    before = scrape(client)
    assert value(before, "replyhub_drafts", status="queued") == 4
    assert value(before, "replyhub_drafts_generated_total") == 0

    draft_all_queued()
    sent, failed, rejected, waiting = Draft.objects.order_by("pk")
    assert sent.approve(alice, sent.reply_text)
    assert failed.approve(alice, failed.reply_text + "\nEdited.")
    assert rejected.reject(alice, "wrong_facts")
    assert send_outbox(sent.delivery.pk) == "sent"
    smtp_server.refuse_with = "550 no such user"
    assert send_outbox(failed.delivery.pk).startswith("failed")

    samples = scrape(client)
    # The reply kept in the thread is mail sent, not mail received.
    assert Message.objects.filter(direction=Message.OUTBOUND).count() == 1
    assert value(samples, "replyhub_messages_ingested_total", mailbox="default") == 4
    assert value(samples, "replyhub_messages_ingested_total", mailbox="sales") == 1
    assert value(samples, "replyhub_drafts", status="queued") == 0
    assert value(samples, "replyhub_drafts", status="ready") == 1
    assert value(samples, "replyhub_drafts", status="sent") == 1
    assert value(samples, "replyhub_drafts", status="send_failed") == 1
    assert value(samples, "replyhub_drafts", status="rejected") == 1
    assert value(samples, "replyhub_drafts_generated_total") == 4
    assert value(samples, "replyhub_review_actions_total", action="approve") == 2
    assert value(samples, "replyhub_review_actions_total", action="reject") == 1
    assert value(samples, "replyhub_review_actions_total", action="sent") == 1
    assert value(samples, "replyhub_review_actions_total", action="send_failed") == 1
    assert value(samples, "replyhub_review_actions_total", action="edit") == 0
    assert value(samples, "replyhub_outbox_replies", state="sent") == 1
    assert value(samples, "replyhub_outbox_replies", state="failed") == 1
    assert value(samples, "replyhub_outbox_replies", state="queued") == 0

    # Latency and speed: from what the four drafts recorded, all ready within the hour.
    drafts = list(Draft.objects.all())
    seconds = [sum(d.timings[k] for k in ("intent_s", "analysis_s", "reply_s")) for d in drafts]
    assert value(samples, "replyhub_draft_generation_seconds_bucket", le="+Inf") == 4
    assert value(samples, "replyhub_draft_generation_seconds_gcount") == 4
    assert value(samples, "replyhub_draft_generation_seconds_gsum") == pytest.approx(sum(seconds))
    assert value(samples, "replyhub_draft_wait_seconds_gcount") == 4
    tokens = sum(d.completion_tokens for d in drafts)
    assert tokens > 0
    assert value(samples, "replyhub_model_tokens_per_second") == pytest.approx(
        tokens / sum(seconds)
    )
    assert waiting.status == Draft.READY


def test_latency_and_speed_cover_the_last_hour_and_count_a_batch_once(client, mailbox):
    now = timezone.now()
    alone = make_ready_draft(
        mailbox,
        "inquiry_en.eml",
        timings={"intent_s": 1.0, "analysis_s": 2.0, "reply_s": 7.0, "batch_size": 1},
        completion_tokens=100,
        ready_at=now,
    )
    batched = make_ready_draft(
        mailbox,
        "with_attachment.eml",
        timings={"intent_s": 4.0, "analysis_s": 4.0, "reply_s": 12.0, "batch_size": 4},
        completion_tokens=200,
        ready_at=now - timedelta(minutes=50),
    )
    make_ready_draft(  # ready two hours ago: outside the window
        mailbox,
        "chinese_gb2312.eml",
        timings={"intent_s": 100.0, "analysis_s": 100.0, "reply_s": 100.0, "batch_size": 1},
        completion_tokens=5,
        ready_at=now - timedelta(hours=2),
    )
    Draft.objects.filter(pk=alone.pk).update(created_at=now - timedelta(seconds=30))
    Draft.objects.filter(pk=batched.pk).update(created_at=now - timedelta(minutes=61))

    samples = scrape(client)
    generation = {
        dict(labels)["le"]: count
        for labels, count in samples["replyhub_draft_generation_seconds_bucket"].items()
    }
    assert generation["5"] == 0
    assert generation["10"] == 1  # 1 + 2 + 7 seconds
    assert generation["20"] == 2  # the batch's 20 seconds
    assert generation["+Inf"] == 2
    assert value(samples, "replyhub_draft_generation_seconds_gsum") == pytest.approx(30.0)
    wait = {
        dict(labels)["le"]: count
        for labels, count in samples["replyhub_draft_wait_seconds_bucket"].items()
    }
    assert (wait["10"], wait["30"], wait["600"], wait["1800"], wait["+Inf"]) == (0, 1, 1, 2, 2)
    assert value(samples, "replyhub_draft_wait_seconds_gsum") == pytest.approx(30.0 + 660.0, abs=1)
    # 300 tokens in 10 s alone plus 20 s shared by a batch of 4 (5 s each): 300 / 15.
    assert value(samples, "replyhub_model_tokens_per_second") == pytest.approx(20.0)
    assert value(samples, "replyhub_drafts_generated_total") == 3


def test_every_metric_is_there_with_zeros_on_an_empty_system(client, db):
    samples = scrape(client)
    assert {dict(labels)["status"] for labels in samples["replyhub_drafts"]} == {
        status for status, _ in Draft.STATUSES
    }
    assert set(samples["replyhub_drafts"].values()) == {0}
    assert {dict(labels)["state"] for labels in samples["replyhub_outbox_replies"]} == {
        state for state, _ in Outbox.STATES
    }
    assert value(samples, "replyhub_model_tokens_per_second") == 0
    assert value(samples, "replyhub_draft_generation_seconds_bucket", le="+Inf") == 0
    assert value(samples, "replyhub_workers") == value(samples, "replyhub_io_workers") == 0
    # Both queues: the model workers' and the I/O workers' (sending, notifications, ...).
    assert set(samples["replyhub_task_queue_length"]) == {
        frozenset({("queue", "replyhub")}), frozenset({("queue", "replyhub-io")}),
    }  # fmt: skip
    assert "replyhub_worker_heartbeat_age_seconds" not in samples  # no worker yet


def test_each_task_queue_is_counted_apart(client, db, django_capture_on_commit_callbacks):
    brokers = [get_broker(), get_broker("replyhub-io")]
    for broker in brokers:
        broker.purge_queue()
    try:
        with django_capture_on_commit_callbacks(execute=True):  # Redis is pushed on commit
            tasks.enqueue_io("drafts.sending.send_outbox", 1)
            tasks.enqueue_io("drafts.notify.deliver_notification", 2)
            tasks._enqueue("drafts.tasks.generate_draft", 3)
        samples = scrape(client)
        assert value(samples, "replyhub_task_queue_length", queue="replyhub") == 1
        assert value(samples, "replyhub_task_queue_length", queue="replyhub-io") == 2
    finally:
        for broker in brokers:
            broker.purge_queue()


def test_the_workers_heartbeats_are_metrics_too(client, db):
    from drafts.health import WorkerHeartbeat

    now = timezone.now()
    WorkerHeartbeat.objects.create(host="a", pid=1, seen_at=now, model_loaded=True)
    WorkerHeartbeat.objects.create(host="b", pid=2, seen_at=now, model_loaded=False)
    WorkerHeartbeat.objects.create(host="c", pid=3, seen_at=now - timedelta(hours=1))
    WorkerHeartbeat.objects.create(host="a", pid=4, seen_at=now, queue="replyhub-io")
    samples = scrape(client)
    assert value(samples, "replyhub_workers") == 3
    assert value(samples, "replyhub_workers_with_model") == 1
    assert value(samples, "replyhub_io_workers") == 1
    assert 0 <= value(samples, "replyhub_worker_heartbeat_age_seconds") < 10


def test_a_scrape_makes_as_many_queries_for_many_drafts_as_for_one(client, mailbox, alice):
    make_ready_draft(mailbox, "inquiry_en.eml")
    with CaptureQueriesContext(connection) as few:
        scrape(client)
    for name in ("chinese_gb2312.eml", "with_attachment.eml", "html_hostile.eml"):
        draft = make_ready_draft(mailbox, name, completion_tokens=50, timings={"reply_s": 2.0})
        draft.reject(alice, "other")
    with CaptureQueriesContext(connection) as many:
        scrape(client)
    assert len(many) == len(few) <= 15


@pytest.mark.parametrize(
    ("table", "columns"),
    [
        ("drafts_message", ["mailbox_id", "direction"]),
        ("drafts_draft", ["status"]),
        ("drafts_draft", ["ready_at"]),
        ("drafts_reviewevent", ["action"]),
        ("drafts_outbox", ["state"]),
        ("drafts_workerheartbeat", ["seen_at"]),
    ],
)
def test_what_the_scrape_counts_by_leads_an_index(db, table, columns):
    """At 100,000 drafts a scan of the wide rows takes seconds; an index scan, milliseconds."""
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
    leading = [c["columns"][: len(columns)] for c in constraints.values() if c["index"]]
    assert columns in leading, f"{table} has no index starting with {columns}"


def test_with_a_token_set_metrics_need_it(client, db, settings):
    settings.REPLYHUB_METRICS_TOKEN = "s3cret-token"
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"REPLYHUB_METRICS_TOKEN" in response.content
    assert b"s3cret-token" not in response.content
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="s3cret-token").status_code == 401
    samples = scrape(client, HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert "replyhub_drafts" in samples


def test_without_a_token_metrics_need_no_login(client, db):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]

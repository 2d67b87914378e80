"""/healthz, /readyz and the workers' heartbeat (drafts/health.py)."""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dj_database_url
import pytest
from django.db import connections
from django.db.utils import load_backend
from django.utils import timezone
from django_q.models import Schedule
from django_q.tasks import async_task

from drafts import health, tasks
from drafts.health import WorkerHeartbeat
from drafts.models import Draft, Mailbox
from tests.conftest import free_port


class ModelServer(ThreadingHTTPServer):
    """An OpenAI-compatible server's model list, as the openai engine's heartbeat asks it."""

    daemon_threads = True
    status = 200
    authorization: str | None = None


class ModelListHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.authorization = self.headers.get("Authorization")
        if self.path != "/v1/models":
            self.send_error(404)
            return
        body = json.dumps({"object": "list", "data": [{"id": "served-model"}]}).encode()
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def model_server(settings) -> Iterator[ModelServer]:
    """A real HTTP server on a free port; the settings point the openai engine at it."""
    server = ModelServer(("127.0.0.1", 0), ModelListHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.REPLYHUB_ENGINE = "openai"
    settings.REPLYHUB_MODEL = "served-model"
    settings.REPLYHUB_OPENAI_BASE_URL = f"http://127.0.0.1:{server.server_address[1]}/v1"
    settings.REPLYHUB_OPENAI_API_KEY = "sk-health"
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(autouse=True)
def _fresh_process():
    """Each test is a worker process's first heartbeat."""
    health._reported.clear()


def beat(seconds_ago: float = 0, loaded: bool = True, **fields: object) -> WorkerHeartbeat:
    values = {
        "host": "gpu-1",
        "pid": 4242,
        "seen_at": timezone.now() - timedelta(seconds=seconds_ago),
        "engine": "transformers",
        "model_name": "/srv/models/qwen",
        "model_loaded": loaded,
        **fields,
    }
    return WorkerHeartbeat.objects.create(**values)


def io_beat(seconds_ago: float = 0) -> WorkerHeartbeat:
    """A heartbeat of an I/O worker (sending, notifications, callbacks; no model)."""
    return beat(
        seconds_ago, loaded=False, host="app-1", pid=777, queue="replyhub-io", engine="",
        model_name="",
    )  # fmt: skip


def readyz(client) -> tuple[int, dict]:
    response = client.get("/readyz")
    assert response["Content-Type"] == "application/json"
    assert "no-store" in response["Cache-Control"]
    return response.status_code, response.json()


# -- /healthz ---------------------------------------------------------------------------


def test_healthz_answers_without_login_and_is_never_cached(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-store" in response["Cache-Control"]


def test_healthz_answers_even_when_the_database_does_not(client, db, monkeypatch):
    def broken(*args: object, **kwargs: object) -> None:
        raise AssertionError("healthz must not touch the database")

    monkeypatch.setattr(health, "readiness", broken)
    monkeypatch.setattr(health, "connections", {})
    assert client.get("/healthz").status_code == 200


def test_the_probes_refuse_to_change_anything(client, db):
    assert client.post("/healthz").status_code == 405
    assert client.post("/readyz").status_code == 405


# -- /readyz ----------------------------------------------------------------------------


def test_readyz_is_ok_with_a_fresh_heartbeat_from_a_worker_with_its_model(client, db, settings):
    beat(seconds_ago=30)
    io_beat(seconds_ago=10)
    status, report = readyz(client)
    assert status == 200, report
    assert report["status"] == "ok"
    checks = report["checks"]
    assert set(checks) == {"database", "broker", "worker", "model", "io_worker"}
    assert all(check["status"] == "ok" for check in checks.values())
    assert checks["database"]["ms"] >= 0
    assert checks["broker"]["broker"] == ("redis" if settings.REDIS_URL else "orm")
    assert checks["worker"]["host"] == "gpu-1" and checks["worker"]["pid"] == 4242
    assert 29 <= checks["worker"]["age_seconds"] < 60
    assert checks["model"]["model"] == "/srv/models/qwen"
    assert checks["io_worker"] == {
        "status": "ok", "queue": "replyhub-io", "workers": 1, "age_seconds": 10.0,
    }  # fmt: skip
    assert checks["worker"]["workers"] == 1  # the I/O worker is not a model worker


def test_readyz_fails_naming_the_worker_when_its_heartbeat_is_stale(client, db, settings):
    settings.REPLYHUB_WORKER_STALE_SECONDS = 180
    beat(seconds_ago=600)
    status, report = readyz(client)
    assert status == 503
    assert report["status"] == "fail"
    checks = report["checks"]
    assert checks["worker"]["status"] == "fail"
    assert "no worker has reported for 600 s (more than 180 s)" in checks["worker"]["error"]
    assert "gpu-1 pid 4242" in checks["worker"]["error"]
    assert checks["model"]["status"] == "fail"
    assert checks["database"]["status"] == "ok"


def test_the_staleness_limit_is_a_setting(client, db, settings):
    beat(seconds_ago=600)
    io_beat(seconds_ago=600)
    settings.REPLYHUB_WORKER_STALE_SECONDS = 900
    assert readyz(client)[0] == 200


def test_readyz_fails_when_no_worker_has_ever_reported(client, db):
    status, report = readyz(client)
    assert status == 503
    assert "no worker has reported yet" in report["checks"]["worker"]["error"]
    assert "qcluster" in report["checks"]["worker"]["error"]


def test_readyz_fails_naming_the_model_when_no_worker_has_loaded_it(client, db):
    beat(loaded=False, model_error="FileNotFoundError: /srv/models/qwen does not exist")
    status, report = readyz(client)
    assert status == 503
    assert report["checks"]["worker"]["status"] == "ok"
    assert report["checks"]["model"] == {
        "status": "fail",
        "engine": "transformers",
        "model": "/srv/models/qwen",
        "error": "FileNotFoundError: /srv/models/qwen does not exist",
    }


def test_one_worker_with_its_model_is_enough(client, db):
    beat(loaded=False, pid=1, model_error="loading the model")
    beat(loaded=True, pid=2, seconds_ago=20)
    io_beat()
    status, report = readyz(client)
    assert status == 200, report
    assert report["checks"]["worker"]["workers"] == 2
    assert report["checks"]["model"]["workers_with_model"] == 1


@pytest.fixture
def unreachable_database() -> Iterator[object]:
    """A database connection to PostgreSQL on a port where nothing listens."""
    url = f"postgres://replyhub@127.0.0.1:{free_port()}/replyhub"
    configured = connections.configure_settings(
        {"default": connections.settings["default"], "unreachable": dj_database_url.parse(url)}
    )["unreachable"]
    connection = load_backend(configured["ENGINE"]).DatabaseWrapper(configured, "unreachable")
    yield connection
    connection.close()


def test_the_database_check_names_the_error_of_an_unreachable_database(
    db, monkeypatch, unreachable_database
):
    monkeypatch.setattr(health, "connections", {"default": unreachable_database})
    result = health.check_database()
    assert result["status"] == "fail"
    assert result["error"].startswith("OperationalError")
    assert "refused" in result["error"].lower()


def test_readyz_fails_naming_the_database_when_it_is_unreachable(
    client, db, settings, monkeypatch, unreachable_database
):
    beat()
    # The web process's database connection is the unreachable one; the heartbeats are
    # still read through the test database, so only the database (and an ORM broker) fail.
    monkeypatch.setattr(health, "connections", {"default": unreachable_database})
    status, report = readyz(client)
    assert status == 503
    checks = report["checks"]
    assert checks["database"]["status"] == "fail"
    assert "OperationalError" in checks["database"]["error"]
    if not settings.REDIS_URL:
        assert checks["broker"] == {"status": "fail", "broker": "orm", "detail": "the database"}
    assert checks["worker"]["status"] == "ok"


def test_readyz_fails_naming_the_broker_when_redis_is_unreachable(client, db, settings):
    beat()
    settings.REDIS_URL = f"redis://:s3cret-password@127.0.0.1:{free_port()}/0"
    response = client.get("/readyz")
    assert response.status_code == 503
    broker = response.json()["checks"]["broker"]
    assert broker["status"] == "fail"
    assert broker["broker"] == "redis"
    assert broker["error"].startswith("ConnectionError")
    assert broker["url"].startswith("redis://127.0.0.1:")
    assert b"s3cret-password" not in response.content
    assert response.json()["checks"]["database"]["status"] == "ok"


def test_a_broker_that_accepts_the_connection_but_never_answers_times_out(client, db, settings):
    beat()
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        settings.REDIS_URL = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        status, report = readyz(client)
    assert status == 503
    assert "Timeout" in report["checks"]["broker"]["error"]


# -- the heartbeat ------------------------------------------------------------------------


def test_a_schedule_runs_the_heartbeat_every_minute_on_both_queues(db):
    schedules = Schedule.objects.filter(func="drafts.health.record_heartbeat")
    assert {s.cluster for s in schedules} == {None, "replyhub-io"}  # model workers', I/O's
    for schedule in schedules:
        assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == (
            Schedule.MINUTES, 1, -1,
        )  # fmt: skip


def test_readyz_fails_naming_the_io_worker_when_none_reports(client, db, settings):
    beat()
    status, report = readyz(client)
    assert status == 503
    assert report["checks"]["worker"]["status"] == report["checks"]["model"]["status"] == "ok"
    error = report["checks"]["io_worker"]["error"]
    assert error.startswith("no I/O worker has reported yet: approved replies wait to be sent")
    assert error.endswith("is `manage.py io_worker` running?")
    settings.REPLYHUB_WORKER_STALE_SECONDS = 180
    io_beat(seconds_ago=400)
    error = readyz(client)[1]["checks"]["io_worker"]["error"]
    assert "no I/O worker has reported for 400 s (more than 180 s); the last was app-1" in error


def test_an_io_worker_reports_without_loading_the_model(client, db, settings, monkeypatch):
    settings.REPLYHUB_MODEL = "/no/such/model"  # loading it would fail
    monkeypatch.setattr(health, "serving_queue", lambda: "replyhub-io")
    assert health.record_heartbeat() == "I/O worker: alive"
    row = WorkerHeartbeat.objects.get()
    assert (row.queue, row.model_loaded, row.model_error, row.engine) == (
        "replyhub-io",
        False,
        "",
        "",
    )
    checks = readyz(client)[1]["checks"]
    assert checks["io_worker"]["status"] == "ok"
    assert checks["worker"]["error"].startswith("no worker has reported yet")


def test_without_an_io_queue_the_model_workers_do_everything(client, db, settings):
    # REPLYHUB_IO_WORKERS=0
    settings.REPLYHUB_IO_QUEUE = None
    beat()
    status, report = readyz(client)
    assert status == 200, report
    assert "io_worker" not in report["checks"]


def test_the_heartbeat_task_records_the_worker_and_that_its_model_server_answers(db, model_server):
    async_task("drafts.health.record_heartbeat", sync=True)
    row = WorkerHeartbeat.objects.get()
    assert (row.host, row.pid) == (socket.gethostname(), os.getpid())
    assert (row.engine, row.model_name) == ("openai", "served-model")
    assert row.model_loaded is True and row.model_error == ""
    assert timezone.now() - row.seen_at < timedelta(seconds=10)
    assert model_server.authorization == "Bearer sk-health"


def test_readyz_is_ok_once_a_heartbeat_has_run(client, db, model_server):
    assert readyz(client)[0] == 503
    io_beat()
    health.record_heartbeat()
    status, report = readyz(client)
    assert status == 200, report
    assert report["checks"]["model"]["engine"] == "openai"


def test_a_model_server_that_fails_is_recorded_with_its_answer(db, settings, model_server):
    model_server.status = 500
    assert health.record_heartbeat().startswith("model not loaded")
    row = WorkerHeartbeat.objects.get()
    assert row.model_loaded is False
    assert row.model_error == f"GET {settings.REPLYHUB_OPENAI_BASE_URL}/models: HTTP 500"


def test_a_model_server_that_is_down_is_recorded_with_the_reason(db, settings):
    settings.REPLYHUB_ENGINE = "openai"
    settings.REPLYHUB_OPENAI_BASE_URL = f"http://127.0.0.1:{free_port()}/v1"
    health.record_heartbeat()
    row = WorkerHeartbeat.objects.get()
    assert row.model_loaded is False
    assert "Connection refused" in row.model_error
    assert settings.REPLYHUB_OPENAI_BASE_URL in row.model_error


def test_a_model_that_does_not_load_is_recorded_with_the_error(db, settings, tmp_path):
    settings.REPLYHUB_ENGINE = "transformers"
    settings.REPLYHUB_MODEL = str(tmp_path / "no-such-model")
    health.record_heartbeat()
    row = WorkerHeartbeat.objects.get()
    assert row.model_loaded is False
    assert "no-such-model" in row.model_error


def test_a_model_loaded_in_the_worker_process_is_recorded(db, settings, monkeypatch):
    settings.REPLYHUB_ENGINE = "transformers"
    loads = []
    monkeypatch.setattr(tasks, "configured_backend", lambda: loads.append(1) or object())
    health.record_heartbeat()
    health.record_heartbeat()
    row = WorkerHeartbeat.objects.get()
    assert row.model_loaded is True
    assert len(loads) == 2  # asked each time; the registry loads once per process


def test_a_first_heartbeat_says_loading_before_the_model_loads(db, monkeypatch):
    # A row left by an earlier process with the same pid (containers reuse pids).
    beat(host=socket.gethostname(), pid=os.getpid(), seconds_ago=3600, loaded=True)
    seen_while_loading = []

    def loading() -> tuple[bool, str]:
        row = WorkerHeartbeat.objects.get()
        seen_while_loading.append((row.model_loaded, row.model_error))
        assert timezone.now() - row.seen_at < timedelta(seconds=10)  # alive meanwhile
        return True, ""

    monkeypatch.setattr(health, "model_status", loading)
    health.record_heartbeat()
    assert seen_while_loading == [(False, "loading the model")]
    assert WorkerHeartbeat.objects.get().model_loaded is True
    # Later heartbeats of the same process keep the model's state while they check it.
    seen_while_loading.clear()
    health.record_heartbeat()
    assert seen_while_loading == [(True, "")]


def test_heartbeats_of_processes_gone_for_a_day_are_deleted(db, model_server):
    beat(host="old-host", seconds_ago=2 * 86400)
    beat(host="recent-host", seconds_ago=3600)
    health.record_heartbeat()
    hosts = set(WorkerHeartbeat.objects.values_list("host", flat=True))
    assert hosts == {"recent-host", socket.gethostname()}


def test_the_probes_answer_over_plain_http_while_pages_redirect_to_https(client, db, settings):
    settings.SECURE_SSL_REDIRECT = True  # as REPLYHUB_HTTPS=1 sets it
    beat()
    io_beat()
    assert client.get("/accounts/login/").status_code == 301
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/metrics").status_code == 200


def test_a_worker_busy_drafting_a_backlog_stays_ready(client, db, monkeypatch):
    """The heartbeat task waits in line behind the drafts; each draft task reports too."""
    from tests.conftest import make_ready_draft
    from tests.test_templates import ComplaintModel

    monkeypatch.setattr(tasks, "configured_backend", lambda: ComplaintModel())
    draft = make_ready_draft(Mailbox.default())
    Draft.objects.filter(pk=draft.pk).update(status=Draft.QUEUED)
    io_beat()
    assert client.get("/readyz").status_code == 503  # no model worker has reported yet
    assert tasks.generate_draft(draft.pk) == "ready: 1"
    answer = client.get("/readyz")
    assert answer.status_code == 200, answer.json()
    assert answer.json()["checks"]["model"]["status"] == "ok"

"""Is ReplyHub up, and can it do its work? /healthz, /readyz and the workers' heartbeat.

``/healthz`` answers as long as the web process does (a liveness probe: restart it if
not). ``/readyz`` checks what the whole deployment needs: the database, the task broker
(Redis when configured; otherwise the database is the broker), a worker that reported
recently, and a model loaded in a worker. The web process cannot see into the workers,
so each worker tells: a django-q2 schedule runs ``record_heartbeat`` every minute, and
the task stores when it ran, in which process, and whether that process has its model
(loading it if not, so a fresh worker is warm before the first email arrives).
"""

from __future__ import annotations

import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connections, models
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

OK, FAIL = "ok", "fail"
BROKER_TIMEOUT = 2.0  # seconds for a Redis ping: a probe must answer quickly
MODEL_SERVER_TIMEOUT = 5.0  # seconds for the openai engine's server to list its models
KEEP_HEARTBEATS = timedelta(days=1)  # rows of processes gone longer than this are deleted


class WorkerHeartbeat(models.Model):
    """The last sign of life of one worker process, and whether it has its model."""

    host = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    seen_at = models.DateTimeField(db_index=True)
    engine = models.CharField(max_length=30, blank=True)
    model_name = models.CharField(max_length=500, blank=True)
    model_loaded = models.BooleanField(default=False)
    model_error = models.TextField(blank=True, help_text="Why the model is not loaded.")
    queue = models.CharField(
        max_length=100, blank=True, help_text="The django-q2 queue the process serves."
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["host", "pid"], name="unique_worker_process")
        ]

    def __str__(self) -> str:
        return f"{self.host}:{self.pid} at {self.seen_at:%Y-%m-%d %H:%M:%S}"


# -- the worker's side ------------------------------------------------------------------


def model_status() -> tuple[bool, str]:
    """Whether this process can draft: (True, "") or (False, why not).

    The ``openai`` engine's model lives in a server, which must answer; the other engines
    load the model into this process, once (drafts.tasks.configured_backend caches it),
    so the first call in a fresh worker loads it and later calls return at once.
    """
    if settings.REPLYHUB_ENGINE == "openai":
        return _model_server_answers()
    from drafts.tasks import configured_backend  # drafts.tasks imports drafts.models

    try:
        configured_backend()
    except Exception as exc:  # whatever the engine raises, the worker cannot draft
        return False, f"{type(exc).__name__}: {exc}"[:2000]
    return True, ""


def _model_server_answers() -> tuple[bool, str]:
    url = settings.REPLYHUB_OPENAI_BASE_URL.rstrip("/") + "/models"
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if settings.REPLYHUB_OPENAI_API_KEY:
        request.add_header("Authorization", f"Bearer {settings.REPLYHUB_OPENAI_API_KEY}")
    try:
        with urllib.request.urlopen(request, timeout=MODEL_SERVER_TIMEOUT) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        return False, f"GET {url}: HTTP {exc.code}"
    except (OSError, ValueError) as exc:  # refused, timed out, unreachable, bad URL
        reason = getattr(exc, "reason", exc)
        return False, f"GET {url}: {reason}"
    return True, ""


_reported: set[int] = set()  # pids of this process (and its forks) that have reported


def serving_queue() -> str:
    """The django-q2 queue this process serves (``Q_CLUSTER_NAME``, or the model workers')."""
    from django_q.conf import Conf

    return Conf.CLUSTER_NAME


def io_worker() -> bool:
    """Whether this process is an I/O worker (settings.REPLYHUB_IO_QUEUE): no model here."""
    return settings.REPLYHUB_IO_QUEUE is not None and serving_queue() == settings.REPLYHUB_IO_QUEUE


def record_heartbeat() -> str:
    """The heartbeat task (every minute, in a worker): this process is alive; has its model?

    A process's first heartbeat says "loading" before it loads the model, so that a load
    taking minutes does not make the worker look dead, and a row left by an earlier
    process with the same pid (containers reuse pids) does not vouch for this one's model.
    An I/O worker only says it is alive: it never loads the model.
    """
    host, pid = socket.gethostname()[:255], os.getpid()
    now = timezone.now()
    io = io_worker()
    mine = WorkerHeartbeat.objects.filter(host=host, pid=pid)
    if pid not in _reported or not mine.update(seen_at=now):
        WorkerHeartbeat.objects.update_or_create(
            host=host,
            pid=pid,
            defaults={
                "seen_at": now,
                "queue": serving_queue()[:100],
                "engine": "" if io else settings.REPLYHUB_ENGINE,
                "model_name": "" if io else settings.REPLYHUB_MODEL[:500],
                "model_loaded": False,
                "model_error": "" if io else "loading the model",
            },
        )
        _reported.add(pid)
    WorkerHeartbeat.objects.filter(seen_at__lt=now - KEEP_HEARTBEATS).delete()
    if io:
        return "I/O worker: alive"
    loaded, error = model_status()
    mine.update(seen_at=timezone.now(), model_loaded=loaded, model_error=error)
    return "model loaded" if loaded else f"model not loaded: {error}"


# -- the checks -------------------------------------------------------------------------


def _ms_since(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


def _failure(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:500]


def check_database(using: str = "default") -> dict[str, Any]:
    """The database answers a trivial query; with the time it took."""
    started = time.monotonic()
    connection = connections[using]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # OperationalError and whatever the driver raises
        return {"status": FAIL, "error": _failure(exc), "ms": _ms_since(started)}
    return {"status": OK, "vendor": connection.vendor, "ms": _ms_since(started)}


def _redacted(url: str) -> str:
    """A Redis URL without its password, for a page anyone may read."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def check_broker(database: dict[str, Any]) -> dict[str, Any]:
    """The task broker: Redis answers a PING, or (ORM broker) the database check's result."""
    if not settings.REDIS_URL:
        return {"status": database["status"], "broker": "orm", "detail": "the database"}
    import redis

    started = time.monotonic()
    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=BROKER_TIMEOUT, socket_timeout=BROKER_TIMEOUT
    )
    url = _redacted(settings.REDIS_URL)
    try:
        client.ping()
    except Exception as exc:  # redis.ConnectionError, TimeoutError, AuthenticationError…
        return {"status": FAIL, "broker": "redis", "url": url, "error": _failure(exc)}
    finally:
        client.close()
    return {"status": OK, "broker": "redis", "url": url, "ms": _ms_since(started)}


def _silent(kind: str, newest: WorkerHeartbeat, now: datetime, stale_after: int) -> str:
    """Why the last heartbeat of a kind of worker is too old to vouch for it."""
    age = round((now - newest.seen_at).total_seconds())
    return (
        f"no {kind} has reported for {age} s (more than {stale_after} s); "
        f"the last was {newest.host} pid {newest.pid}"
    )


def check_workers(now: datetime | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(worker, model): a heartbeat newer than REPLYHUB_WORKER_STALE_SECONDS, and a recently
    seen worker with its model loaded."""
    now = now or timezone.now()
    stale_after = settings.REPLYHUB_WORKER_STALE_SECONDS
    model_workers = WorkerHeartbeat.objects.all()
    if settings.REPLYHUB_IO_QUEUE:
        model_workers = model_workers.exclude(queue=settings.REPLYHUB_IO_QUEUE)
    try:
        recent = list(
            model_workers.filter(seen_at__gte=now - timedelta(seconds=stale_after))
            .order_by("-seen_at")
            .values("host", "pid", "seen_at", "engine", "model_name", "model_loaded", "model_error")
        )
        newest = None if recent else model_workers.order_by("-seen_at").first()
    except Exception as exc:  # the database check names the cause
        failed = {"status": FAIL, "error": f"cannot read the heartbeats: {_failure(exc)}"}
        return failed, dict(failed)
    if not recent and newest is None:
        error = "no worker has reported yet: is `manage.py qcluster` running?"
        return {"status": FAIL, "error": error}, {"status": FAIL, "error": error}
    if not recent:
        error = _silent("worker", newest, now, stale_after)
        return (
            {"status": FAIL, "error": error, "last_seen": newest.seen_at.isoformat()},
            {"status": FAIL, "error": "no worker is running to load the model"},
        )
    last = recent[0]
    worker = {
        "status": OK,
        "workers": len(recent),
        "last_seen": last["seen_at"].isoformat(),
        "age_seconds": round((now - last["seen_at"]).total_seconds(), 1),
        "host": last["host"],
        "pid": last["pid"],
    }
    if loaded := [beat for beat in recent if beat["model_loaded"]]:
        return worker, {
            "status": OK,
            "engine": loaded[0]["engine"],
            "model": loaded[0]["model_name"],
            "workers_with_model": len(loaded),
        }
    return worker, {
        "status": FAIL,
        "engine": last["engine"],
        "model": last["model_name"],
        "error": last["model_error"] or "not loaded",
    }


def check_io_workers(now: datetime | None = None) -> dict[str, Any]:
    """An I/O worker (settings.REPLYHUB_IO_QUEUE) reported within
    REPLYHUB_WORKER_STALE_SECONDS: without one, approved replies are not sent."""
    now = now or timezone.now()
    queue = settings.REPLYHUB_IO_QUEUE
    stale_after = settings.REPLYHUB_WORKER_STALE_SECONDS
    try:
        beats = WorkerHeartbeat.objects.filter(queue=queue).order_by("-seen_at")
        recent = list(beats.filter(seen_at__gte=now - timedelta(seconds=stale_after)))
        newest = recent[0] if recent else beats.first()
    except Exception as exc:  # the database check names the cause
        return {"status": FAIL, "error": f"cannot read the heartbeats: {_failure(exc)}"}
    if not recent:
        silent = _silent("I/O worker", newest, now, stale_after) if newest else None
        error = silent or "no I/O worker has reported yet"
        return {
            "status": FAIL,
            "queue": queue,
            "error": f"{error}: approved replies wait to be sent; "
            "is `manage.py io_worker` running?",
        }
    return {
        "status": OK,
        "queue": queue,
        "workers": len(recent),
        "age_seconds": round((now - recent[0].seen_at).total_seconds(), 1),
    }


def readiness() -> dict[str, Any]:
    """Every check, and "ok" overall only when all of them are."""
    database = check_database()
    worker, model = check_workers()
    checks = {
        "database": database,
        "broker": check_broker(database),
        "worker": worker,
        "model": model,
    }
    if settings.REPLYHUB_IO_QUEUE:
        checks["io_worker"] = check_io_workers()
    status = OK if all(check["status"] == OK for check in checks.values()) else FAIL
    return {"status": status, "checks": checks}


# -- the views (no login: probes and load balancers call them) ---------------------------


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """200 as long as this web process answers; touches nothing else."""
    return JsonResponse({"status": OK})


@never_cache
@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    """200 when every check passes, 503 otherwise; the checks' details either way."""
    report = readiness()
    response = JsonResponse(report, status=200 if report["status"] == OK else 503)
    # Django logs every 5xx as an error; a probe asking every few seconds while a worker
    # loads its model would flood the log with lines that say less than this JSON does.
    response._has_been_logged = True
    return response

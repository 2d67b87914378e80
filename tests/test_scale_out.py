"""The production shape: PostgreSQL, a Redis broker, two workers, one model server.

200 customer emails arrive while two django-q2 clusters (two processes, as on two machines)
draft them through one OpenAI-compatible model server; two reviewers then approve every
draft at the same time, racing for each one; the workers send the replies to a real SMTP
server. Every message must get exactly one draft, drafted once, and every approval exactly
one send. Whatever database the rest of the suite runs on, this test makes its own
PostgreSQL database and Redis queue, as a deployment has.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from email import message_from_bytes
from pathlib import Path

import psycopg
import pytest
import redis
from aiosmtpd.controller import Controller

from tests.conftest import SMTPRecorder, free_port

ROOT = Path(__file__).resolve().parent.parent
PG_SERVER = "postgres://postgres@127.0.0.1:5432/"
REDIS_URL = "redis://127.0.0.1:6379/0"
MESSAGES = 200
MODEL = ROOT / "tests" / "fixtures" / "chatglm" / "chatglm3-6b-tiny"


def _postgres(statement: str) -> None:
    with psycopg.connect(PG_SERVER + "postgres", autocommit=True) as conn:
        conn.execute(statement)


@pytest.fixture
def deployment(tmp_path):
    """A fresh PostgreSQL database and Redis queue, migrated; the environment to reach them."""
    name = f"replyhub_scale_{uuid.uuid4().hex[:8]}"
    _postgres(f"CREATE DATABASE {name}")
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")},
        "DATABASE_URL": PG_SERVER + name,
        "REDIS_URL": REDIS_URL,
        "REPLYHUB_QUEUE": name,
        "REPLYHUB_VAR_DIR": str(tmp_path),
    }
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True
        )
        yield env
    finally:
        with contextlib.suppress(Exception):
            redis.Redis.from_url(REDIS_URL).delete(
                *(f"django_q:{name}:q", f"django_q:{name}-io:q", name)
            )
        _postgres(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def drive(env: dict, *args: str) -> dict:
    """Run one command of tests/scaleout.py against the deployment; its JSON answer."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.scaleout", *args],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def background(argv: list[str], env: dict, log: Path):
    """A long-running process in its own process group, stopped (and its log kept) at the end."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield process
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def wait_for(check, timeout: float, what: str, processes=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        for process in processes:
            if process.poll() is not None:
                pytest.fail(f"{process.args} exited ({process.returncode}) waiting for {what}")
        time.sleep(1)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def serving(port: int) -> bool:
    with contextlib.suppress(OSError):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            return answer.status == 200
    return False


@pytest.fixture
def smtp():
    recorder = SMTPRecorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port())
    controller.start()
    recorder.port = controller.port
    yield recorder
    controller.stop()


def test_two_workers_draft_every_message_once_and_send_every_approval_once(
    deployment, smtp, tmp_path
):
    port = free_port()
    server_argv = [sys.executable, "-m", "inference.server", "--model", str(MODEL),
                   "--port", str(port), "--device", "cpu"]  # fmt: skip
    worker_env = {
        **deployment,
        "REPLYHUB_ENGINE": "openai",
        "REPLYHUB_OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1",
        "REPLYHUB_WORKERS": "1",
        "REPLYHUB_MAX_NEW_TOKENS": "24",
        "REPLYHUB_ANALYSIS_MAX_NEW_TOKENS": "16",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp.port),
    }
    qcluster = [sys.executable, "manage.py", "qcluster"]
    # Two machines, each with a model worker and an I/O worker (which sends the replies).
    io_env = {**worker_env, "Q_CLUSTER_NAME": deployment["REPLYHUB_QUEUE"] + "-io"}
    drive(deployment, "setup")
    with (
        background(server_argv, deployment, tmp_path / "server.log") as server,
        background(qcluster, worker_env, tmp_path / "worker1.log") as first,
        background(qcluster, worker_env, tmp_path / "worker2.log") as second,
        background(qcluster, io_env, tmp_path / "io1.log") as first_io,
        background(qcluster, io_env, tmp_path / "io2.log") as second_io,
    ):
        workers = (server, first, second, first_io, second_io)
        wait_for(lambda: serving(port), 120, "the model server", workers)
        assert drive(deployment, "ingest", str(MESSAGES)) == {"ingested": MESSAGES}

        def all_drafted():
            report = drive(deployment, "report")
            busy = sum(report["statuses"].get(s, 0) for s in ("queued", "generating"))
            return report if busy == 0 else None

        drafted = wait_for(all_drafted, 600, "200 drafts", workers)
        assert drafted["messages"] == drafted["drafts"] == MESSAGES
        assert drafted["messages_without_draft"] == 0
        assert drafted["statuses"] == {"ready": MESSAGES}, drafted["statuses"]
        assert drafted["ready_not_at_version_3"] == 0  # none claimed or stored twice

        # Two reviewers approve everything at once, racing for every draft.
        approvers = [
            subprocess.Popen(
                [sys.executable, "-m", "tests.scaleout", "approve", name],
                cwd=ROOT,
                env=deployment,
                stdout=subprocess.PIPE,
                text=True,
            )
            for name in ("alice", "bob")
        ]
        results = [json.loads(p.communicate(timeout=300)[0].splitlines()[-1]) for p in approvers]
        assert sum(r["approved"] for r in results) == MESSAGES

        def all_sent():
            report = drive(deployment, "report")
            return report if report["outbox"] == {"sent": MESSAGES} else None

        sent = wait_for(all_sent, 300, "200 replies sent", workers)

    assert sent["approvals"] == MESSAGES and sent["most_approvals_of_one_draft"] == 1
    assert sent["most_outbox_records_of_one_draft"] == 1
    delivered = [message_from_bytes(raw) for raw in smtp.raw]
    assert len(delivered) == MESSAGES  # exactly one send per approval, none twice
    assert sorted(m["Message-ID"] for m in delivered) == sorted(sent["sent_message_ids"])
    answered = {m["In-Reply-To"] for m in delivered}
    assert len(answered) == MESSAGES  # every customer email answered once
    # Both workers took part: the drafts name two different worker processes.
    assert len(drafted["workers"]) == 2, drafted["workers"]

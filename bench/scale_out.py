"""Throughput of the production shape with 1, 2, ... workers: PostgreSQL, Redis, django-q2.

    .venv/bin/python bench/scale_out.py --workers 1,2 --messages 200 --model tiny
    .venv/bin/python bench/scale_out.py --workers 1,2 --messages 16 --model bundled

For each worker count: a fresh PostgreSQL database and Redis queue, migrated; the workers
(separate `manage.py qcluster` processes, one worker each, as on separate machines) are
started; --messages customer emails are ingested at once; the clock runs until every one
has a draft ready; then everything is approved, as many I/O workers as workers are started
(`manage.py io_worker`, REPLYHUB_IO_WORKERS=2 processes each), and the clock runs from the
first reply at a local SMTP server (aiosmtpd) to the last. Prints drafts/s and sends/s per
worker count.

--model tiny: every worker calls one OpenAI-compatible model server (python -m
inference.server) holding the tiny random-weight ChatGLM3 of tests/fixtures: the model
costs almost nothing, so this measures ReplyHub's own ceiling (database, broker, workers).
--model bundled: each worker loads the bundled SmolLM2-135M itself on the CPU, with short
replies (REPLYHUB_MAX_NEW_TOKENS=48): a model-bound run.

The database commands run through tests/scaleout.py, the same driver as the scale-out test.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from pagebench import say, wait

ROOT = Path(__file__).resolve().parent.parent
PG = "postgres://postgres@127.0.0.1:5432/"
REDIS_URL = "redis://127.0.0.1:6379/0"
TINY = ROOT / "tests" / "fixtures" / "chatglm" / "chatglm3-6b-tiny"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres(statement: str) -> None:
    import psycopg

    with psycopg.connect(PG + "postgres", autocommit=True) as conn:
        conn.execute(statement)


def drive(env: dict, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "tests.scaleout", *args], cwd=ROOT, env=env,
                         check=True, capture_output=True, text=True).stdout  # fmt: skip
    return json.loads(out.strip().splitlines()[-1])


class Counter:
    """An SMTP server's handler that accepts every message and keeps it."""

    def __init__(self) -> None:
        self.raw: list[bytes] = []
        self.times: list[float] = []  # time.monotonic() of each message's arrival

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.raw.append(envelope.content)  # type: ignore[attr-defined]
        self.times.append(time.monotonic())
        return "250 OK"


def run(workers: int, messages: int, model: str, folder: Path) -> dict:
    """One measurement: drafts/s and sends/s with ``workers`` workers."""
    from aiosmtpd.controller import Controller

    name = f"replyhub_bench_scale_{uuid.uuid4().hex[:8]}"
    postgres(f"CREATE DATABASE {name}")
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    # Replies go out at once: this times the sending, not the undo window.
    env = {**base, "DATABASE_URL": PG + name, "REDIS_URL": REDIS_URL, "REPLYHUB_QUEUE": name,
           "REPLYHUB_VAR_DIR": str(folder), "REPLYHUB_UNDO_SECONDS": "0"}  # fmt: skip
    smtp = Counter()
    controller = Controller(smtp, hostname="127.0.0.1", port=free_port())
    controller.start()
    worker_env = {**env, "REPLYHUB_WORKERS": "1", "SMTP_HOST": "127.0.0.1",
                  "SMTP_PORT": str(controller.port)}  # fmt: skip
    processes = []
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env,
                       check=True)  # fmt: skip
        drive(env, "setup")
        if model == "tiny":
            port = free_port()
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "inference.server", "--model", str(TINY), "--port",
                 str(port), "--device", "cpu"], cwd=ROOT, env=env, start_new_session=True,
                stderr=subprocess.DEVNULL,
            ))  # fmt: skip
            worker_env |= {"REPLYHUB_ENGINE": "openai",
                           "REPLYHUB_OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1",
                           "REPLYHUB_MAX_NEW_TOKENS": "24",
                           "REPLYHUB_ANALYSIS_MAX_NEW_TOKENS": "16"}  # fmt: skip

            def up() -> bool:
                with contextlib.suppress(OSError):
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                        return True
                return False

            wait(up, "the model server", 120)
        else:
            worker_env |= {
                "REPLYHUB_MAX_NEW_TOKENS": "48",
                "REPLYHUB_ANALYSIS_MAX_NEW_TOKENS": "16",
            }

        # Each "machine": a model worker, and an I/O worker (which sends the replies).
        def start(kind: str, n: int, command: str) -> None:
            log = (folder / f"{kind}{n}.log").open("wb")
            processes.append(subprocess.Popen(
                [sys.executable, "manage.py", command], cwd=ROOT, env=worker_env,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            ))  # fmt: skip

        for n in range(workers):
            start("worker", n, "qcluster")
        time.sleep(5 if model == "tiny" else 20)  # the clusters start (and load the model)
        say(f"  {workers} worker(s): ingesting {messages} messages")
        started = time.monotonic()
        drive(env, "ingest", str(messages))

        def drafted() -> bool:
            statuses = drive(env, "report")["statuses"]
            return statuses.get("queued", 0) + statuses.get("generating", 0) == 0

        wait(drafted, "the drafts")
        draft_seconds = time.monotonic() - started
        report = drive(env, "report")
        say(f"  drafted in {draft_seconds:.1f} s: {report['statuses']}")
        # Every reply is approved before the I/O workers start, so the sending is timed on
        # its own: from the first reply at the SMTP server to the last.
        approved = drive(env, "approve", "alice")["approved"]
        for n in range(workers):
            start("io", n, "io_worker")
        wait(lambda: len(smtp.raw) >= approved, "the replies")
        send_seconds = smtp.times[-1] - smtp.times[0]
        say(f"  sent {approved} in {send_seconds:.1f} s")
        return {
            "workers": workers,
            "messages": messages,
            "draft_seconds": round(draft_seconds, 1),
            "drafts_per_s": round(messages / draft_seconds, 2),
            "failed": report["statuses"].get("failed", 0),
            "send_seconds": round(send_seconds, 1),
            "sends_per_s": round(approved / send_seconds, 2),
        }
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        controller.stop()
        with contextlib.suppress(Exception):
            import redis

            redis.Redis.from_url(REDIS_URL).delete(f"django_q:{name}:q", f"django_q:{name}-io:q")
        postgres(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--model", choices=["tiny", "bundled"], default="tiny")
    args = parser.parse_args()
    rows = []
    for workers in map(int, args.workers.split(",")):
        with tempfile.TemporaryDirectory(prefix="replyhub-scale-") as folder:
            rows.append(run(workers, args.messages, args.model, Path(folder)))
    print(f"\nMachine: {platform.node()}, {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.2f}")
    print(f"Command: .venv/bin/python bench/scale_out.py {' '.join(sys.argv[1:])}")
    print(f"\nModel: {args.model}\n")
    print("| workers | messages | drafted in s | drafts/s | failed | sent in s | sends/s |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['workers']} | {r['messages']} | {r['draft_seconds']} | {r['drafts_per_s']} "
              f"| {r['failed']} | {r['send_seconds']} | {r['sends_per_s']} |")  # fmt: skip


if __name__ == "__main__":
    main()

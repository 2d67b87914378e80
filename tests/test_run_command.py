"""`manage.py run`, the README's run command, as a new user starts it."""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import smtplib
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import psutil
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from drafts.management.commands import run as run_command
from tests.conftest import free_port

MANAGE = str(Path(settings.BASE_DIR) / "manage.py")


class Run:
    """`manage.py run` in its own process, with its output collected in a file."""

    def __init__(self, var_dir: Path, web_port: int, smtp_port: int, *options: str) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env.update(REPLYHUB_VAR_DIR=str(var_dir), SMTP_PORT=str(smtp_port))
        self.log = var_dir / f"run-{time.monotonic_ns()}.log"
        self.web = f"http://127.0.0.1:{web_port}"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, MANAGE, "run", "--bind", f"127.0.0.1:{web_port}", *options],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_until(self, predicate, what: str, timeout: float = 120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"run exited early ({self.process.returncode}):\n{self.output}")
            try:
                if value := predicate():
                    return value
            except OSError:
                pass
            time.sleep(0.5)
        pytest.fail(f"timed out waiting for {what}:\n{self.output[-3000:]}")

    def child(self, name: str, queue: str | None = None) -> psutil.Process | None:
        """The live child running ``name``; of qcluster, the one serving ``queue`` (its
        Q_CLUSTER_NAME; None: the model workers' queue)."""
        for child in psutil.Process(self.process.pid).children():
            try:
                if child.status() == psutil.STATUS_ZOMBIE or name not in child.cmdline():
                    continue
                if child.environ().get("Q_CLUSTER_NAME") == queue:
                    return child
            except psutil.Error:
                continue
        return None

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=60)


def login(base: str, username: str, password: str) -> str:
    """Log in through the real login form; return the queue page's HTML."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    form = opener.open(f"{base}/accounts/login/").read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    data = urllib.parse.urlencode(
        {"username": username, "password": password, "csrfmiddlewaretoken": token}
    ).encode()
    return opener.open(f"{base}/accounts/login/", data).read().decode()


def smtp_answers(port: int) -> bool:
    with smtplib.SMTP("127.0.0.1", port, timeout=2) as client:
        return client.noop()[0] == 250


def test_run_sets_up_and_supervises_replyhub(tmp_path):
    smtp_port = free_port()
    run = Run(tmp_path, free_port(), smtp_port)
    children = []
    try:
        password = run.wait_until(
            lambda: re.search(r"username: admin\s+password: (\S+)", run.output), "the admin"
        ).group(1)
        run.wait_until(lambda: "ReplyHub is running" in run.output, "the start")
        assert "Demo inbox: 30 new message(s)" in run.output
        queue = run.wait_until(lambda: login(run.web, "admin", password), "the web server")
        assert "Awaiting review" in queue
        assert 'In progress <span class="count">' in queue
        run.wait_until(lambda: smtp_answers(smtp_port), "the SMTP sink")

        sink = run.child("smtp_sink")
        sink.kill()
        run.wait_until(
            lambda: (new := run.child("smtp_sink")) is not None and new.pid != sink.pid,
            "the SMTP sink to be restarted",
        )
        assert "SMTP sink exited with code -9; restarting" in run.output
        run.wait_until(lambda: smtp_answers(smtp_port), "the restarted SMTP sink")
        children = psutil.Process(run.process.pid).children()
        assert sorted(c.cmdline()[2] for c in children) == [
            "qcluster", "qcluster", "runserver", "smtp_sink",
        ]  # fmt: skip
        # The model's worker, and the I/O worker that sends without waiting for the model.
        assert run.child("qcluster") and run.child("qcluster", "replyhub-io")
        children = psutil.Process(run.process.pid).children(recursive=True)
        assert len(children) > 3  # the django-q2 cluster forks its own processes
    finally:
        code = run.stop()
    assert code == 0
    assert "Stopping" in run.output
    _, alive = psutil.wait_procs(children, timeout=30)
    assert alive == []  # no orphans left behind

    second = Run(tmp_path, free_port(), free_port())
    try:
        second.wait_until(lambda: "ReplyHub is running" in second.output, "the second start")
        assert "password" not in second.output
        assert "Demo inbox" not in second.output
    finally:
        second.stop()


def test_a_crashed_worker_is_restarted_and_its_forked_processes_are_cleaned_up(tmp_path):
    run = Run(tmp_path, free_port(), free_port(), "--no-demo", "--no-sink")
    try:
        run.wait_until(lambda: "ReplyHub is running" in run.output, "the start")
        worker = run.wait_until(lambda: run.child("qcluster"), "the worker")
        forked = run.wait_until(lambda: worker.children(recursive=True), "the cluster's processes")
        worker.kill()  # SIGKILL to the cluster's main process alone, as a crash leaves it
        new = run.wait_until(
            lambda: (new := run.child("qcluster")) is not None and new.pid != worker.pid and new,
            "the worker to be restarted",
        )
        assert "worker exited with code -9; restarting in 1 s" in run.output
        # What the dead cluster had forked does not live on beside the new one.
        _, alive = psutil.wait_procs(forked, timeout=10)
        assert alive == []
        assert new.is_running()
    finally:
        assert run.stop() == 0


def test_the_io_worker_says_why_it_cannot_run_without_an_io_queue(settings):
    settings.REPLYHUB_IO_QUEUE = None  # REPLYHUB_IO_WORKERS=0
    with pytest.raises(CommandError, match="REPLYHUB_IO_WORKERS is 0, so there is no I/O queue"):
        call_command("io_worker")


class FakeClock:
    """time.monotonic for Supervised, moved on by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_a_child_that_keeps_crashing_waits_longer_each_time_up_to_a_cap(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(run_command, "time", clock)
    child = run_command.Supervised("worker", [sys.executable, "-c", "raise SystemExit(3)"])
    lines: list[str] = []
    child.start()
    delays = []
    for _ in range(8):
        child.process.wait(timeout=30)
        clock.now += 2  # it crashed at once, well within a minute of starting
        child.check(lines.append)
        assert child.process is None  # not restarted before its delay
        delays.append(child.restart_at - clock.now)
        clock.now = child.restart_at
        child.check(lines.append)
        assert child.process is not None  # restarted once the delay is over
    child.process.wait(timeout=30)
    assert delays == [1, 2, 4, 8, 16, 30, 30, 30]
    assert lines[0] == "worker exited with code 3; restarting in 1 s"
    assert lines[-1] == "worker exited with code 3; restarting in 30 s"


def test_a_child_that_ran_fine_for_a_while_restarts_quickly_again(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(run_command, "time", clock)
    child = run_command.Supervised("worker", [sys.executable, "-c", "raise SystemExit(1)"])
    child.backoff = run_command.MAX_BACKOFF  # after a bad spell
    child.start()
    child.process.wait(timeout=30)
    clock.now += 3600  # this run lasted an hour
    lines: list[str] = []
    child.check(lines.append)
    assert lines == ["worker exited with code 1; restarting in 1 s"]

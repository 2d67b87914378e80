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

from tests.conftest import free_port

MANAGE = str(Path(settings.BASE_DIR) / "manage.py")


class Run:
    """`manage.py run` in its own process, with its output collected in a file."""

    def __init__(self, var_dir: Path, web_port: int, smtp_port: int) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
        env.update(REPLYHUB_VAR_DIR=str(var_dir), SMTP_PORT=str(smtp_port))
        self.log = var_dir / f"run-{time.monotonic_ns()}.log"
        self.web = f"http://127.0.0.1:{web_port}"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, MANAGE, "run", "--bind", f"127.0.0.1:{web_port}"],
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

    def child(self, name: str) -> psutil.Process | None:
        for child in psutil.Process(self.process.pid).children():
            try:
                if child.status() != psutil.STATUS_ZOMBIE and name in child.cmdline():
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
        assert {c.cmdline()[2] for c in children} == {"runserver", "qcluster", "smtp_sink"}
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

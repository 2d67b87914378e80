"""The whole loop: mbox import -> real worker + real model -> review over HTTP -> SMTP -> stats."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django_q.brokers import get_broker

from drafts.models import Draft, Mailbox, Message
from tests.conftest import MAIL_DIR, database_url, make_ready_draft

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("default_template")]


def wait_for(predicate, timeout: float, what: str, worker=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        if worker is not None and worker.poll() is not None:
            pytest.fail(f"the worker exited with code {worker.returncode} while waiting for {what}")
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


@contextlib.contextmanager
def cluster(smtp_server, log_path: Path, command: str = "qcluster"):
    """A real django-q2 cluster in its own process, on the test database: the model
    workers' (``qcluster``) or the I/O workers' (``io_worker``)."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_server.port),
        "REPLYHUB_MAX_NEW_TOKENS": "24",
        "REPLYHUB_ANALYSIS_MAX_NEW_TOKENS": "16",
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), command],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: the cluster's forks go with it
        )
        try:
            yield process
        finally:
            process.terminate()  # the cluster stops its own workers
            try:
                process.wait(timeout=60)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
            print(log_path.read_text(errors="replace")[-5000:])


@pytest.fixture
def queues():
    """Both task queues, emptied first: the model workers' and the I/O workers'."""
    model, io = get_broker(), get_broker(settings.REPLYHUB_IO_QUEUE)
    for broker in (model, io):
        broker.purge_queue()
    return model, io


@pytest.fixture
def worker(smtp_server, tmp_path, queues):
    """The model's worker and the I/O worker, as `manage.py run` and deploy/ start them."""
    with (
        cluster(smtp_server, tmp_path / "worker.log") as process,
        cluster(smtp_server, tmp_path / "io.log", "io_worker"),
    ):
        yield process


def csrf_token(client: Client, url: str) -> str:
    page = client.get(url).text
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)


def test_mail_in_draft_review_send_and_stats(worker, smtp_server, alice, carol, tmp_path):
    mbox = tmp_path / "inbox.mbox"
    with mbox.open("wb") as out:
        for name in ("inquiry_en.eml", "out_of_office.eml"):
            out.write(b"From MAILER-DAEMON Thu Jan  1 00:00:00 2026\n")
            out.write((MAIL_DIR / name).read_bytes().rstrip(b"\n") + b"\n\n")
    call_command("import_mail", str(mbox))
    assert Message.objects.count() == 2
    draft = Draft.objects.get()  # the auto-reply got none

    wait_for(
        lambda: Draft.objects.get(pk=draft.pk).status in (Draft.READY, Draft.FAILED),
        timeout=300,
        what="the worker to draft the reply",
        worker=worker,
    )
    draft.refresh_from_db()
    assert draft.status == Draft.READY, draft.error
    assert draft.reply_text.startswith("Dear Olivia Brown,")
    assert draft.completion_tokens > 0

    client = Client(enforce_csrf_checks=True)
    login = reverse("login")
    response = client.post(
        login,
        {
            "username": "alice",
            "password": "alice-password-1",
            "csrfmiddlewaretoken": csrf_token(client, login),
        },
    )
    assert response.status_code == 302
    page = reverse("draft", args=[draft.pk])
    assert "Pricing for Acme CRM, 25 seats" in client.get(page).text
    edited = "Dear Olivia Brown,\n\nAcme CRM Professional includes the API. A quote follows today."
    response = client.post(
        reverse("draft_action", args=[draft.pk]),
        {
            "action": "approve",
            "reply_text": edited,
            "csrfmiddlewaretoken": csrf_token(client, page),
        },
    )
    assert response.status_code == 302

    wait_for(lambda: smtp_server.received, timeout=60, what="the reply at the SMTP server")
    [(recipients, sent)] = smtp_server.received
    assert recipients == ["purchasing@northwind.example"]
    assert sent["Subject"] == "Re: Pricing for Acme CRM, 25 seats"
    assert sent["In-Reply-To"] == "<fixture-inquiry-1@northwind.example>"
    assert sent["References"] == "<fixture-inquiry-1@northwind.example>"
    assert sent.get_content().replace("\r\n", "\n").strip() == edited
    wait_for(
        lambda: Draft.objects.get(pk=draft.pk).status == Draft.SENT,
        timeout=30,
        what="the draft to be marked sent",
    )

    client.force_login(carol)  # the supervisor reads the stats
    stats = client.get(reverse("stats"))
    [row] = stats.context["rows"]
    assert (row.reviewer, row.approved_edited, row.approved_unchanged, row.sent) == (
        "alice",
        1,
        0,
        1,
    )
    assert len(smtp_server.received) == 1


def test_an_approved_reply_goes_out_while_the_models_queue_holds_a_backlog(
    smtp_server, tmp_path, queues, alice
):
    # The model is busy (here: no model worker at all) with emails that came in before; the
    # reply a reviewer approves now is sent by the I/O worker, not after the backlog.
    model_queue, io_queue = queues
    for name in ("chinese_gb2312.eml", "with_attachment.eml", "reply_in_thread.eml"):
        call_command("import_mail", str(MAIL_DIR / name))
    draft = make_ready_draft(Mailbox.default())
    backlog = model_queue.queue_size()
    assert backlog == 4  # a drafting task for each email
    with cluster(smtp_server, tmp_path / "io.log", "io_worker") as io_worker:
        client = Client()
        client.force_login(alice)
        response = client.post(
            reverse("draft_action", args=[draft.pk]),
            {"action": "approve", "reply_text": draft.reply_text},
        )
        assert response.status_code == 302
        wait_for(
            lambda: smtp_server.received, timeout=60, what="the reply at the SMTP server",
            worker=io_worker,
        )  # fmt: skip
        [(recipients, sent)] = smtp_server.received
        assert recipients == ["purchasing@northwind.example"]
        assert sent.get_content().strip() == draft.reply_text.replace("\n", "\r\n").strip()
        wait_for(
            lambda: Draft.objects.get(pk=draft.pk).status == Draft.SENT,
            timeout=30,
            what="the draft to be marked sent",
        )
    assert model_queue.queue_size() == backlog  # still waiting for the model
    assert io_queue.queue_size() == 0


def test_an_approval_waits_for_its_undo_window_and_an_undone_one_never_goes_out(
    smtp_server, tmp_path, queues, alice, settings
):
    # The I/O worker's scheduler sends each approved reply once its undo window has closed;
    # a reply whose approval was undone in the window is never sent.
    settings.REPLYHUB_UNDO_SECONDS = 3
    kept = make_ready_draft(Mailbox.default())
    undone = make_ready_draft(Mailbox.default(), "with_attachment.eml")
    client = Client()
    client.force_login(alice)
    with cluster(smtp_server, tmp_path / "io.log", "io_worker") as io_worker:
        approved_at = time.monotonic()
        for draft in (kept, undone):
            client.post(
                reverse("draft_action", args=[draft.pk]),
                {"action": "approve", "reply_text": draft.reply_text},
            )
        client.post(reverse("draft_action", args=[undone.pk]), {"action": "undo"})
        wait_for(
            lambda: smtp_server.received, timeout=90, what="the kept reply at the SMTP server",
            worker=io_worker,
        )  # fmt: skip
        assert time.monotonic() - approved_at >= 3
        wait_for(
            lambda: Draft.objects.get(pk=kept.pk).status == Draft.SENT,
            timeout=30,
            what="the kept draft to be marked sent",
        )
        # The undone reply was due at the same time as the kept one: by now it would be out.
        time.sleep(2)
    [(recipients, _)] = smtp_server.received
    assert recipients == ["purchasing@northwind.example"]  # the kept one (inquiry_en.eml)
    assert Draft.objects.get(pk=undone.pk).status == Draft.READY

"""Structured logs: REPLYHUB_LOG_FORMAT=json, one JSON object per line, with the ids."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.conf import settings

from drafts import tasks
from drafts.ingest import ingest_message
from drafts.models import Draft
from drafts.sending import send_outbox
from replyhub.logging import JsonFormatter
from tests.conftest import mail_bytes
from tests.test_inference import ScriptedBackend

MANAGE = str(Path(settings.BASE_DIR) / "manage.py")


@pytest.fixture
def json_lines() -> Iterator[Callable[[], list[dict]]]:
    """What ReplyHub's loggers write through the JSON formatter, each line parsed."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("drafts")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def lines_about(lines: list[dict], text: str) -> list[dict]:
    return [line for line in lines if text in line["message"]]


def test_a_record_is_one_json_object_with_its_extra_fields():
    logger = logging.getLogger("drafts.example")
    record = logger.makeRecord(
        "drafts.example",
        logging.WARNING,
        __file__,
        1,
        "Draft %s: %s",
        (42, "引擎 failed"),
        None,
        extra={"draft_id": 42, "message_id": 7, "when": datetime(2026, 1, 2, tzinfo=UTC)},
    )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "drafts.example"
    assert entry["message"] == "Draft 42: 引擎 failed"
    assert (entry["draft_id"], entry["message_id"]) == (42, 7)
    assert entry["when"] == "2026-01-02 00:00:00+00:00"  # what JSON cannot hold, as text
    assert datetime.fromisoformat(entry["time"]).tzinfo is not None
    assert "args" not in entry and "msg" not in entry and "levelno" not in entry


def test_a_traceback_stays_inside_the_one_line():
    try:
        raise ValueError("model exploded\nsecond line")
    except ValueError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    line = JsonFormatter().format(record)
    assert len(line.splitlines()) == 1
    entry = json.loads(line)
    assert entry["exception"].startswith("Traceback")
    assert "ValueError: model exploded\nsecond line" in entry["exception"]


def test_storing_a_message_logs_its_id_its_draft_and_its_mailbox(mailbox, json_lines):
    message, _ = ingest_message(mailbox, mail_bytes("inquiry_en.eml"))
    newsletter, _ = ingest_message(mailbox, mail_bytes("newsletter.eml"))
    stored = lines_about(json_lines(), "Stored message")
    assert [(e["message_id"], e["draft_id"], e["mailbox"]) for e in stored] == [
        (message.pk, message.draft.pk, "default"),
        (newsletter.pk, None, "default"),
    ]
    assert stored[1]["message"].endswith("no draft (bulk)")


def test_drafting_logs_its_start_and_each_ready_draft_with_the_ids(
    mailbox, settings, monkeypatch, json_lines
):
    settings.REPLYHUB_BATCH_SIZE = 1
    monkeypatch.setattr(tasks, "configured_backend", lambda: ScriptedBackend(['{"product": ""}']))
    message, _ = ingest_message(mailbox, mail_bytes("inquiry_en.eml"))
    draft = message.draft
    assert tasks.generate_draft(draft.pk) == "ready: 1"
    lines = json_lines()
    (start,) = lines_about(lines, "Drafting")
    assert (start["draft_id"], start["message_id"], start["task"]) == (
        draft.pk,
        message.pk,
        "generate_draft",
    )
    assert start["draft_ids"] == [draft.pk]
    (ready,) = lines_about(lines, "ready")
    assert (ready["draft_id"], ready["message_id"]) == (draft.pk, message.pk)
    assert ready["level"] == "INFO"
    (done,) = lines_about(lines, "Drafted")
    assert done["draft_ids"] == [draft.pk]


def test_a_failed_generation_logs_the_drafts_and_the_traceback(
    mailbox, settings, monkeypatch, json_lines
):
    settings.REPLYHUB_BATCH_SIZE = 1

    def broken():
        raise OSError("CUDA out of memory")

    monkeypatch.setattr(tasks, "configured_backend", broken)
    message, _ = ingest_message(mailbox, mail_bytes("inquiry_en.eml"))
    assert tasks.generate_draft(message.draft.pk) == "failed"
    (failure,) = lines_about(json_lines(), "generation failed")
    assert failure["level"] == "ERROR"
    assert (failure["draft_id"], failure["draft_ids"]) == (message.draft.pk, [message.draft.pk])
    assert "OSError: CUDA out of memory" in failure["exception"]


def approved(mailbox, user) -> Draft:
    message, _ = ingest_message(mailbox, mail_bytes("inquiry_en.eml"))
    Draft.objects.filter(pk=message.draft.pk).update(status=Draft.READY, reply_text="Dear Olivia")
    draft = Draft.objects.get(pk=message.draft.pk)
    assert draft.approve(user, draft.reply_text)
    return draft


def test_a_sent_reply_is_logged_with_its_outbox_draft_and_message(
    mailbox, alice, smtp_server, json_lines
):
    draft = approved(mailbox, alice)
    outbox = draft.delivery
    assert send_outbox(outbox.pk) == "sent"
    (sent,) = lines_about(json_lines(), "sent to")
    assert (sent["outbox_id"], sent["draft_id"], sent["message_id"], sent["task"]) == (
        outbox.pk,
        draft.pk,
        draft.message_id,
        "send_outbox",
    )


def test_a_refused_reply_is_logged_as_a_warning_with_the_ids(
    mailbox, alice, smtp_server, json_lines
):
    smtp_server.refuse_with = "550 mailbox unavailable"
    draft = approved(mailbox, alice)
    assert send_outbox(draft.delivery.pk).startswith("failed")
    (failed,) = lines_about(json_lines(), "failed")
    assert failed["level"] == "WARNING"
    assert (failed["draft_id"], failed["outbox_id"]) == (draft.pk, draft.delivery.pk)
    assert "550 mailbox unavailable" in failed["message"]


def manage_shell(tmp_path: Path, code: str, **env: str) -> subprocess.CompletedProcess:
    unset = ("DATABASE_URL", "REDIS_URL", "REPLYHUB_LOG_FORMAT")
    environment = {k: v for k, v in os.environ.items() if k not in unset}
    environment.update(REPLYHUB_VAR_DIR=str(tmp_path), **env)
    return subprocess.run(
        [sys.executable, MANAGE, "shell", "-c", code],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


LOG_A_LINE = (
    "import logging; "
    "logging.getLogger('drafts.tasks').warning('Draft %s failed', 9, extra={'draft_id': 9})"
)


def test_the_setting_turns_every_log_line_into_json(tmp_path):
    done = manage_shell(tmp_path, LOG_A_LINE, REPLYHUB_LOG_FORMAT="json")
    assert done.returncode == 0, done.stderr
    (line,) = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    assert line["message"] == "Draft 9 failed"
    assert (line["level"], line["logger"], line["draft_id"]) == ("WARNING", "drafts.tasks", 9)


def test_logs_stay_plain_text_by_default(tmp_path):
    done = manage_shell(tmp_path, LOG_A_LINE)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().endswith("WARNING drafts.tasks: Draft 9 failed")


def test_an_unknown_log_format_is_refused_by_name(tmp_path):
    done = manage_shell(tmp_path, "pass", REPLYHUB_LOG_FORMAT="xml")
    assert done.returncode != 0
    assert "REPLYHUB_LOG_FORMAT must be one of plain, json, not 'xml'" in done.stderr

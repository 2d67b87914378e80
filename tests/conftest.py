"""Shared fixtures: named users, the default mailbox, mail files, a real SMTP server."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone
from playwright.sync_api import Browser

from drafts.ingest import ingest_message
from drafts.models import Draft, Mailbox, Message, PromptTemplate, StaffProfile
from inference.prompts import DEFAULT_PROMPTS
from tests.browser import Visitor, chromium

MAIL_DIR = Path(__file__).parent / "fixtures" / "mail"
DEMO_INBOX = Path(settings.BASE_DIR) / "drafts" / "demo" / "inbox.mbox"


def mail_bytes(name: str) -> bytes:
    """A fixture email as raw bytes."""
    return (MAIL_DIR / name).read_bytes()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SMTPRecorder:
    """aiosmtpd handler that keeps what it receives, and fails on demand the ways real
    servers do: a refusal at RCPT or at the end of DATA (``refuse_rcpt``, ``refuse_with``:
    "451 …", "550 …"; ``refuse_for``: at RCPT, for the addresses it maps), the connection
    dropped before the message data (``drop_at_rcpt``) or after the server has it
    (``drop_after_data``), or the answer withheld until ``release`` is set
    (``hold_after_data``) while ``got_data`` says the data arrived."""

    def __init__(self) -> None:
        self.received: list[tuple[list[str], object]] = []
        self.raw: list[bytes] = []
        self.refuse_with: str | None = None
        self.refuse_rcpt: str | None = None
        self.refuse_for: dict[str, str] = {}
        self.drop_at_rcpt = False
        self.drop_after_data = False
        self.hold_after_data = False
        self.got_data = threading.Event()
        self.release = threading.Event()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        if self.drop_at_rcpt:
            server.transport.close()
            return "421 closing"
        if self.refuse_rcpt:
            return self.refuse_rcpt
        if address.lower() in self.refuse_for:
            return self.refuse_for[address.lower()]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: object, session: object, envelope) -> str:
        if self.refuse_with:
            return self.refuse_with
        message = BytesParser(policy=policy.default).parsebytes(envelope.original_content)
        self.received.append((list(envelope.rcpt_tos), message))
        self.raw.append(envelope.original_content)
        self.got_data.set()
        if self.drop_after_data:
            server.transport.close()
        while self.hold_after_data and not self.release.is_set():
            await asyncio.sleep(0.05)
        return "250 OK: queued as 42"


@pytest.fixture
def smtp_server(settings) -> Iterator[SMTPRecorder]:
    """A real SMTP server on a free local port; Django's settings point at it."""
    recorder = SMTPRecorder()
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    # pytest-django swaps in the locmem backend; these tests talk to a real server.
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    recorder.port = port
    try:
        yield recorder
    finally:
        recorder.release.set()
        controller.stop()


@pytest.fixture
def mailbox(db) -> Mailbox:
    return Mailbox.default()


@pytest.fixture
def alice(db) -> User:
    """A reviewer of the default mailbox."""
    user = User.objects.create_user("alice", "alice@acme.example", "alice-password-1")
    Mailbox.default().reviewers.add(user)
    return user


@pytest.fixture
def bob(db) -> User:
    """A second reviewer of the default mailbox."""
    user = User.objects.create_user("bob", "bob@acme.example", "bob-password-1")
    Mailbox.default().reviewers.add(user)
    return user


@pytest.fixture
def carol(db) -> User:
    """A supervisor: every mailbox, and the stats."""
    user = User.objects.create_user("carol", "carol@acme.example", "carol-password-1")
    StaffProfile.objects.create(user=user, role=StaffProfile.SUPERVISOR)
    return user


@pytest.fixture
def dana(db) -> User:
    """An admin by role, not a superuser."""
    user = User.objects.create_user("dana", password="dana-password-1")
    StaffProfile.objects.create(user=user, role=StaffProfile.ADMIN)
    return User.objects.get(pk=user.pk)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, one per test module of browser tests (tests/browser.py)."""
    # Playwright's sync API leaves its event loop marked as running in this thread, and
    # Django then refuses ORM calls; ours stay synchronous, so the guard is lifted here.
    with pytest.MonkeyPatch.context() as patch, chromium() as browser:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield browser


@pytest.fixture
def visit(browser: Browser, live_server) -> Iterator[Callable[[str], Visitor]]:
    """Log a user in, in a browser context of their own: ``visit("alice").page``."""
    visitors: list[Visitor] = []

    def logged_in(username: str) -> Visitor:
        visitor = Visitor(browser, live_server.url)
        visitors.append(visitor)
        visitor.log_in(username)
        return visitor

    yield logged_in
    for visitor in visitors:
        visitor.close()


@pytest.fixture
def default_template(transactional_db) -> None:
    """The seeded prompt template, for transactional tests: the others empty the database
    when they end, that template too."""
    if not PromptTemplate.objects.exists():
        PromptTemplate.objects.create(
            name="default",
            system_prompt=DEFAULT_PROMPTS.system,
            analysis_prompt=DEFAULT_PROMPTS.analysis,
            reply_prompt=DEFAULT_PROMPTS.reply,
        )


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


def make_ready_draft(mailbox: Mailbox, name: str = "inquiry_en.eml", **fields: object) -> Draft:
    """Ingest a fixture email and give it a draft as the model would have left it."""
    message, _ = ingest_message(mailbox, mail_bytes(name))
    values = {
        "status": Draft.READY,
        "intent": "inquiry",
        "confidence": 0.8,
        "ready_at": timezone.now(),
        "language": "en",
        "generated_text": (
            "Dear Olivia Brown,\n\nThank you for your interest.\n\nAcme Cloud Support Team"
        ),
        "fields": {
            "customer_name": [
                {"value": "Olivia Brown", "source": "header", "span": None, "verified": True}
            ]
        },
    }
    values.update(fields)
    values.setdefault("reply_text", values["generated_text"])
    Draft.objects.filter(message=message).update(**values)
    return Message.objects.get(pk=message.pk).draft


def all_at_once(*calls: Callable[[], object]) -> list[object]:
    """Run each call in its own thread, released together (as workers or users racing
    for one row would), each closing its database connection; their results, in the
    order they finished."""
    results: list[object] = []
    start = threading.Barrier(len(calls))

    def run(call: Callable[[], object]) -> None:
        start.wait()
        try:
            results.append(call())
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.fixture(autouse=True)
def _send_at_once(settings):
    """Approved replies are sent at once, as with REPLYHUB_UNDO_SECONDS=0; the tests of the
    undo window (tests/test_undo_send.py, the end-to-end test) set their own."""
    settings.REPLYHUB_UNDO_SECONDS = 0


@pytest.fixture(autouse=True)
def _forget_failed_logins(request, django_db_blocker):
    """Login-failure counters live in the cache, which may be a shared Redis: reset them.
    The database cache's rows go with a test's transaction, or stay after a transactional
    test (whose flush leaves tables without a model alone): emptied then."""
    yield
    from django.core.cache import cache, caches
    from django.core.cache.backends.db import DatabaseCache

    if isinstance(caches["default"], DatabaseCache):
        marker = request.node.get_closest_marker("django_db")
        if "transactional_db" in request.fixturenames or (
            marker and marker.kwargs.get("transaction")
        ):
            with django_db_blocker.unblock():
                cache.clear()
        return
    names = ["alice", "bob", "carol", "mallory", "mei", "", *(f"guess{n}" for n in range(5))]
    addresses = ["127.0.0.1", "203.0.113.66", "203.0.113.10"]
    cache.delete_many(
        [f"login-failures:user:{n}" for n in names]
        + [f"login-failures:addr:{address}" for address in addresses]
    )


def database_url() -> str:
    """A URL for the test database, for a worker in another process."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class ReplayedGraph:
    """What a captured CUDA graph does, on the CPU: each replay runs the captured step again
    on the same input tensors, into the same output tensor."""

    def __init__(self, steps: object, length: int, out: object) -> None:
        self.steps, self.length, self.out = steps, length, out

    def replay(self) -> None:
        self.out.copy_(self.steps._run(self.length))


@pytest.fixture
def replayed_graphs(monkeypatch) -> list[int]:
    """CUDA graph capture (inference.fastpath.CapturedSteps) made to run on the CPU, the
    graphs replayed by running the step; the cache lengths captured, in order."""
    from inference.fastpath import CapturedSteps

    captured: list[int] = []

    def capture(steps: CapturedSteps, length: int) -> tuple[ReplayedGraph, object]:
        captured.append(length)
        out = steps._run(length)
        return ReplayedGraph(steps, length, out), out

    monkeypatch.setattr(CapturedSteps, "_capture", capture)
    return captured

"""Helpers for the browser tests: Debian's Chromium, driven by Playwright's sync API.

Needs /usr/bin/chromium (`make test` installs it with the `system-deps` target).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from django.core.signals import request_finished, request_started
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # Every host but the live server fails to resolve at once, so a request that escapes
    # a page is seen (and fails fast) instead of leaving the machine.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost",
]
# Short: the pages are small, and a wrong assertion should fail in seconds, not 30.
TIMEOUT_MS = 5_000
PASSWORDS = {
    "alice": "alice-password-1",
    "bob": "bob-password-1",
    "carol": "carol-password-1",
}


@contextmanager
def chromium() -> Iterator[Browser]:
    """One headless Chromium for a test module."""
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


class _ServerRequests:
    """How many requests the live server, a thread of this process, has begun and has
    still in hand (Django's request signals)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.begun = self.active = 0

    def begin(self, **kwargs: object) -> None:
        with self.lock:
            self.begun += 1
            self.active += 1

    def end(self, **kwargs: object) -> None:
        with self.lock:
            self.active -= 1


SERVER = _ServerRequests()
request_started.connect(SERVER.begin, dispatch_uid="tests.browser.begin")
request_finished.connect(SERVER.end, dispatch_uid="tests.browser.end")
DRAFT_PAGE = re.compile(r"/drafts/\d+/")


class Visitor:
    """One person's browser session: a fresh context, what it requested, what popped up."""

    def __init__(self, browser: Browser, base_url: str, user_agent: str | None = None) -> None:
        self.base_url = base_url
        self.context: BrowserContext = browser.new_context(
            base_url=base_url,
            locale="en-US",
            viewport={"width": 1280, "height": 900},
            user_agent=user_agent,
        )
        self.context.set_default_timeout(TIMEOUT_MS)
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.context.on("request", lambda request: self.requests.append(request.url))
        self.context.on("page", self._watch)
        self.page = self.context.new_page()

    def _watch(self, page: Page) -> None:
        def dismiss(dialog) -> None:
            self.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", dismiss)

    def log_in(self, username: str) -> Page:
        """Log in through the login form; the queue is where it lands."""
        page = self.page
        page.goto("/accounts/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(PASSWORDS[username])
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{self.base_url}/")
        return page

    def new_tab(self) -> Page:
        return self.context.new_page()

    def foreign_requests(self) -> list[str]:
        """Requests for anything but the live server (data: and about: load nothing)."""
        ours = urlsplit(self.base_url).netloc
        return [
            url
            for url in self.requests
            if urlsplit(url).scheme not in ("data", "about", "blob")
            and urlsplit(url).netloc != ours
        ]

    def close(self) -> None:
        """Leave the pages, and let the server finish what leaving them sent, then close.

        A draft page gives up its claim as it is left, with a beacon the browser sends on
        its own: that request must be done before the test's database is flushed, or
        PostgreSQL finds the flush and the request deadlocked.
        """
        begun = SERVER.begun
        on_drafts = [p for p in self.context.pages if DRAFT_PAGE.search(p.url)]
        for page in self.context.pages:
            page.goto("about:blank")
        if on_drafts:
            deadline = time.monotonic() + 0.5
            while SERVER.begun == begun and time.monotonic() < deadline:
                time.sleep(0.01)  # the beacon on its way
            deadline = time.monotonic() + 5
            while SERVER.active and time.monotonic() < deadline:
                time.sleep(0.01)
        self.context.close()

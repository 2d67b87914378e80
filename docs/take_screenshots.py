"""Take the README's screenshots from a fresh ReplyHub with real drafts, in Debian's Chromium.

    .venv/bin/python docs/take_screenshots.py [--drafts 8]

In a temporary data folder: migrates, imports the demo inbox, has the configured model
(the bundled one by default) draft the first --drafts emails in one batch (the mailbox
answers within 24 hours, complaints within 4), approves one and rejects one as a reviewer,
adds a note and three saved replies, then serves ReplyHub with `runserver` and saves the
queue (in English and in Chinese), a draft beside its email, and the stats into
docs/screenshots/.
The drafts are the model's own: the pictures show what a reviewer would really see.
Needs the dev requirements (playwright) and /usr/bin/chromium (`make test` installs both).
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
sys.path.insert(0, str(ROOT))


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def prepare(count: int) -> dict[str, str]:
    """Migrate, import the demo inbox, draft ``count`` emails; the users' passwords."""
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from drafts.management.commands.run import DEMO_INBOX
    from drafts.models import Draft, Mailbox, SavedReply, StaffProfile
    from drafts.tasks import generate_draft

    call_command("migrate", verbosity=0)
    # A reply target, so that the queue shows when each email is due.
    Mailbox.objects.filter(pk=Mailbox.default().pk).update(
        reply_within_hours=24, complaints_within_hours=4
    )
    call_command("import_mail", str(DEMO_INBOX), verbosity=0)
    passwords = {name: secrets.token_urlsafe(10) for name in ("mei", "li")}
    mei = User.objects.create_user("mei", password=passwords["mei"], first_name="Mei")
    StaffProfile.objects.create(user=mei, role=StaffProfile.SUPERVISOR)
    li = User.objects.create_user("li", password=passwords["li"], first_name="Li")
    Mailbox.default().reviewers.add(li)
    first = Draft.objects.filter(status=Draft.QUEUED).order_by("id")[:count]
    say(f"drafting {len(first)} emails with the configured model (a few minutes on a CPU)…")
    started = time.monotonic()
    generate_draft(first[0].pk)  # claims up to REPLYHUB_BATCH_SIZE waiting drafts at once
    ready = list(Draft.objects.filter(status=Draft.READY).order_by("id"))
    say(f"  {len(ready)} drafts ready in {time.monotonic() - started:.0f} s")
    if len(ready) >= 3:
        ready[-1].approve(li, ready[-1].reply_text)
        ready[-2].reject(li, "wrong_facts", "We do not offer a 30% discount.")
    if ready:
        ready[0].add_note(li, "The customer also called the hotline this morning.")
    for title, language, text in SAVED_REPLIES:
        SavedReply.objects.create(title=title, language=language, text=text, updated_by=mei)
    return passwords


# Saved replies as a team would keep them, for the draft page's list.
SAVED_REPLIES = [
    (
        "退款流程",
        "zh",
        "关于订单 {order_number} 的退款：请回复您的开户行和账号，我们会在 3 个工作日内处理。",
    ),
    (
        "Opening hours",
        "en",
        "Our support team is there Monday to Friday, 9:00-18:00 China Standard Time.",
    ),
    (
        "Password reset",
        "",
        "To reset your password, choose “Forgot password” on {company_name}'s sign-in "
        "page; the link we email you works for 30 minutes.",
    ),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve(port: int) -> subprocess.Popen:
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("runserver did not start")


def shoot(base: str, password: str) -> None:
    from playwright.sync_api import sync_playwright

    from tests.browser import CHROMIUM, CHROMIUM_ARGS

    OUT.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900}, base_url=base)
        page.goto("/accounts/login/")
        page.fill("input[name=username]", "mei")
        page.fill("input[name=password]", password)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(f"{base}/")
        page.screenshot(path=OUT / "queue.png")
        page.click("table.queue tbody a >> nth=0")
        page.wait_for_selector("textarea[name=reply_text]")
        field = page.locator("table.fields a.field").first
        if field.count():
            field.click()  # its place in the email lights up
        if page.locator("#saved-replies summary").count():
            page.click("#saved-replies summary")  # the saved replies this draft is offered
        page.screenshot(path=OUT / "draft.png", full_page=True)
        page.goto("/stats/")
        page.screenshot(path=OUT / "stats.png", full_page=True)
        page.goto("/")
        page.select_option("#language-select", "zh-hans")
        page.click("form.language button")
        page.wait_for_selector("html[lang=zh-hans]")
        page.screenshot(path=OUT / "queue-zh.png")
        browser.close()
    say(f"saved {', '.join(sorted(p.name for p in OUT.glob('*.png')))} in {OUT}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--drafts", type=int, default=8, help="emails the model drafts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="replyhub-screenshots-") as folder:
        os.environ.update(
            REPLYHUB_VAR_DIR=folder,
            REPLYHUB_BATCH_SIZE=str(args.drafts),
            DJANGO_SETTINGS_MODULE="replyhub.settings",
        )
        for name in ("DATABASE_URL", "REDIS_URL"):
            os.environ.pop(name, None)
        passwords = prepare(args.drafts)
        port = free_port()
        server = serve(port)
        try:
            shoot(f"http://localhost:{port}", passwords["mei"])
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()

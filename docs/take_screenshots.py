"""Take the README's screenshots from a running ReplyHub with Debian's Chromium.

    python docs/take_screenshots.py http://127.0.0.1:8000 admin PASSWORD

Needs the `playwright` package (in requirements-dev.txt) and /usr/bin/chromium.
"""

from __future__ import annotations

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

OUT = Path(__file__).parent / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def main(base: str, username: str, password: str) -> None:
    """Log in, then save the queue, a draft page and the stats page as PNGs."""
    OUT.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{base}/accounts/login/")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/")
        page.screenshot(path=OUT / "queue.png")
        page.click("table.queue tbody a >> nth=0")
        page.wait_for_selector("textarea[name=reply_text]")
        page.screenshot(path=OUT / "draft.png")
        page.goto(f"{base}/stats/")
        page.screenshot(path=OUT / "stats.png")
        browser.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])

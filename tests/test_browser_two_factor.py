"""Two-step verification in a real browser: setting it up from the QR page's setup key,
logging in with a code, and being held on the setup page when one's role requires it.

As in tests/test_browser.py: Debian's Chromium driven by Playwright, one context per
person. The codes are computed here from the setup key the page shows, as an
authenticator app would, on the real clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Browser, Page, expect

from drafts.models import StaffProfile
from drafts.two_factor import current_step, totp
from tests.browser import Visitor
from tests.test_signed_in import SAFARI_IPHONE

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def visitor(browser: Browser, live_server) -> Iterator[Visitor]:
    """A browser of someone who has not logged in yet."""
    visitor = Visitor(browser, live_server.url)
    yield visitor
    visitor.close()


def type_password(page: Page, username: str, password: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def set_up_from_the_page(page: Page) -> str:
    """Read the setup key as a person who cannot scan would, type the app's code, and
    switch two-step verification on; the key."""
    expect(page.locator(".qr svg")).to_be_visible()
    page.get_by_text("Cannot scan it? Enter the setup key instead").click()
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    page.get_by_label("Enter the 6-digit code the app now shows").fill(totp(secret, current_step()))
    page.get_by_role("button", name="Turn on two-step verification").click()
    expect(page.locator(".notice.success")).to_have_text("Two-step verification is on.")
    expect(page.locator(".recovery-codes li")).to_have_count(10)
    return secret


def test_a_reviewer_turns_it_on_and_then_logs_in_with_a_code(visitor, alice):
    page = visitor.log_in("alice")
    page.get_by_role("link", name="Account security").click()
    expect(page.get_by_role("heading", name="Set up two-step verification")).to_be_visible()
    secret = set_up_from_the_page(page)
    page.get_by_role("link", name="Continue").click()
    expect(page).to_have_url(f"{visitor.base_url}/")
    page.get_by_role("button", name="Log out").click()

    type_password(page, "alice", "alice-password-1")
    expect(page).to_have_url(f"{visitor.base_url}/accounts/login/code/")
    expect(page.get_by_role("heading", name="Two-step verification")).to_be_visible()
    page.get_by_label("Code").fill("000000" if totp(secret, current_step()) != "000000" else "1")
    page.get_by_role("button", name="Verify").click()
    expect(page.locator("p.error")).to_contain_text("That code is not right.")
    # The code used to switch it on is spent: the app's next one is taken (clock drift).
    page.get_by_label("Code").fill(totp(secret, current_step() + 1))
    page.get_by_role("button", name="Verify").click()
    expect(page).to_have_url(f"{visitor.base_url}/")
    expect(page.locator("header .logout")).to_contain_text("alice")


def test_an_admin_who_must_use_it_is_held_on_the_setup_page(visitor, settings):
    settings.REPLYHUB_REQUIRE_2FA = "admins"
    dana = User.objects.create_user("dana", password="dana-password-1")
    StaffProfile.objects.create(user=dana, role=StaffProfile.ADMIN)
    page = visitor.page
    type_password(page, "dana", "dana-password-1")
    expect(page).to_have_url(re.compile(r"/account/security/\?next=%2F$"))
    expect(page.locator(".setup .notice")).to_have_text(
        "Your role requires two-step verification. Set it up to go on using ReplyHub."
    )
    page.locator("header nav").get_by_role("link", name="Admin").click()
    expect(page).to_have_url(re.compile(r"/account/security/\?next=%2Fadmin%2F$"))
    set_up_from_the_page(page)
    page.get_by_role("link", name="Continue").click()
    expect(page).to_have_url(f"{visitor.base_url}/admin/")
    expect(page.get_by_role("link", name="Users")).to_be_visible()


def test_a_reviewer_signs_out_a_lost_laptop_and_changes_the_password(
    browser: Browser, live_server, visitor, alice
):
    laptop = Visitor(browser, live_server.url)
    try:
        laptop.log_in("alice")
        page = visitor.log_in("alice")
        page.get_by_role("link", name="Account security").click()
        sessions = page.locator("table.sessions tbody tr")
        expect(sessions).to_have_count(2)
        expect(sessions.filter(has_text="This browser")).to_have_count(1)
        sessions.filter(has_not_text="This browser").get_by_role("button").click()
        expect(page.locator(".notice.success")).to_have_text("1 other session was signed out.")
        expect(sessions).to_have_count(1)
        laptop.page.reload()
        expect(laptop.page).to_have_url(re.compile(r"/accounts/login/"))

        page.get_by_label("Old password").fill("alice-password-1")
        page.get_by_label("New password:", exact=True).fill("correct horse battery staple")
        page.get_by_label("New password confirmation").fill("correct horse battery staple")
        page.get_by_role("button", name="Change password").click()
        expect(page.locator(".notice.success")).to_have_text("Your password is changed.")
        page.goto("/")
        expect(page.locator("header .logout")).to_contain_text("alice")  # still signed in
    finally:
        laptop.close()


def test_a_reviewer_is_told_of_failed_attempts_and_finds_them_in_the_activity(
    browser: Browser, live_server, visitor, alice
):
    intruder = Visitor(browser, live_server.url, user_agent=SAFARI_IPHONE)
    try:
        for guess in ("alice123", "password"):
            type_password(intruder.page, "alice", guess)
            expect(intruder.page.get_by_text("Please enter a correct username")).to_be_visible()
    finally:
        intruder.close()
    page = visitor.log_in("alice")
    expect(page.locator(".notice.warning")).to_contain_text(
        "2 failed attempts to sign in to your account since you last signed in"
    )
    page.get_by_role("link", name="Account security").click()
    events = page.locator("table.activity tbody tr")
    expect(events).to_have_count(3)
    expect(events.first).to_contain_text("Signed in")
    failed = page.locator("table.activity tr.failed")
    expect(failed).to_have_count(2)
    expect(failed.first).to_contain_text("Wrong password")
    expect(failed.first).to_contain_text("Safari on iPhone")

"""Account activity: sign-ins, failed attempts and security changes, with browser and
address; the person's recent activity on Account security, the warning after signing in,
everyone's in the admin, and forgetting them after REPLYHUB_ACCOUNT_ACTIVITY_DAYS."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from drafts.account_activity import AccountEvent, forget_old_events
from drafts.apps import NIGHTLY
from drafts.two_factor import TwoFactor
from tests.test_signed_in import CHROME_MAC, FIREFOX_WINDOWS, SECURITY, change_password
from tests.test_two_factor import clock, code, enter_code, turned_on  # noqa: F401 (clock)

pytestmark = pytest.mark.django_db


def from_(address: str, agent: str = FIREFOX_WINDOWS) -> Client:
    """A browser at ``address`` (behind nginx, as the proxy passes it on)."""
    return Client(HTTP_USER_AGENT=agent, REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR=address)


def log_in(client: Client, username: str, password: str):
    return client.post(reverse("login"), {"username": username, "password": password})


def kinds(user: User | None) -> list[str]:
    """The user's events, oldest first."""
    return list(
        AccountEvent.objects.filter(user=user).order_by("id").values_list("kind", flat=True)
    )


def activity_rows(page: str) -> list[str]:
    """The Recent activity table's rows, as text."""
    table = page.split('<table class="activity">')[1].split("</table>")[0]
    return [
        " ".join(re.sub(r"<[^>]+>", " ", row).split())
        for row in re.findall(r"<tr[^>]*data-kind[^>]*>(.*?)</tr>", table, re.S)
    ]


def test_a_wrong_password_is_kept_with_the_clients_address_and_browser(alice):
    assert log_in(from_("203.0.113.66", CHROME_MAC), "alice", "guess").status_code == 200
    event = AccountEvent.objects.get()
    assert (event.user, event.kind) == (alice, AccountEvent.WRONG_PASSWORD)
    assert event.ip_address == "203.0.113.66"
    assert event.browser == "Chrome on macOS"


def test_a_name_that_is_no_account_is_kept_without_the_name(alice):
    log_in(from_("203.0.113.66"), "alice-password-1", "whatever")  # the password in the name box
    event = AccountEvent.objects.get()
    assert event.user is None and event.kind == AccountEvent.WRONG_PASSWORD
    assert "alice-password-1" not in str(AccountEvent.objects.values().get())


def test_attempts_while_locked_are_kept_as_refused(alice, settings):
    settings.REPLYHUB_LOGIN_ATTEMPTS = 2
    intruder = from_("203.0.113.66")
    for _ in range(2):
        log_in(intruder, "alice", "guess")
    assert log_in(intruder, "alice", "alice-password-1").status_code == 429
    # A script that keeps trying fills no table: one record a minute per address.
    for _ in range(5):
        assert log_in(intruder, "alice", "guess").status_code == 429
    assert kinds(alice) == ["wrong_password", "wrong_password", "locked_out"]
    assert log_in(from_("198.51.100.9"), "alice", "guess").status_code == 429  # the account
    assert kinds(alice)[-1] == "locked_out" and len(kinds(alice)) == 4


def test_signing_in_tells_of_the_failed_attempts_since_the_last_sign_in(alice):
    for _ in range(3):
        log_in(from_("203.0.113.66", CHROME_MAC), "alice", "guess")
    office = from_("192.0.2.10")
    answer = office.post(
        reverse("login"), {"username": "alice", "password": "alice-password-1"}, follow=True
    )
    text = " ".join(answer.text.split())
    assert "3 failed attempts to sign in to your account since you last signed in" in text
    assert "from 203.0.113.66" in text
    assert "If that was not you, change your password" in text
    # Told once: the next sign-in has nothing new to report.
    again = from_("192.0.2.10").post(
        reverse("login"), {"username": "alice", "password": "alice-password-1"}, follow=True
    )
    assert "failed attempt" not in again.text


def test_ones_own_typo_just_before_signing_in_is_no_news(alice):
    office = from_("192.0.2.10")
    log_in(office, "alice", "alice-pasword-1")
    answer = office.post(
        reverse("login"), {"username": "alice", "password": "alice-password-1"}, follow=True
    )
    assert "failed attempt" not in answer.text
    assert kinds(alice) == ["wrong_password", "signed_in"]


def test_account_security_lists_the_persons_recent_activity(alice, bob):
    log_in(from_("203.0.113.66", CHROME_MAC), "alice", "guess")
    log_in(from_("198.51.100.9"), "bob", "guess")  # someone else's: not on alice's page
    office = from_("192.0.2.10")
    log_in(office, "alice", "alice-password-1")
    page = office.get(SECURITY).text
    assert "Recent activity" in page
    assert activity_rows(page)[0].endswith("Signed in Firefox on Windows 192.0.2.10")
    assert activity_rows(page)[1].endswith("Wrong password Chrome on macOS 203.0.113.66")
    assert len(activity_rows(page)) == 2
    assert '<tr class="failed" data-kind="wrong_password">' in page
    assert "for 180 days" in page


@pytest.mark.usefixtures("clock")  # the codes of T0
def test_changes_to_how_one_signs_in_are_kept(alice):
    office = from_("192.0.2.10")
    log_in(office, "alice", "alice-password-1")
    change_password(office, "not-it", "a-new-password-2")
    change_password(office, "alice-password-1", "a-new-password-2")
    office.get(SECURITY)  # the setup shown
    secret = TwoFactor.objects.get(user=alice).secret
    office.post(SECURITY, {"action": "enable", "code": code(secret)})
    office.post(SECURITY, {"action": "recovery_codes", "confirmation": "a-new-password-2"})
    office.post(SECURITY, {"action": "disable", "confirmation": "a-new-password-2"})
    assert kinds(alice) == [
        "signed_in",
        "wrong_password",
        "password_changed",
        "two_factor_on",
        "recovery_codes_made",
        "two_factor_off",
    ]
    page = office.get(SECURITY).text
    assert "Two-step verification turned off" in activity_rows(page)[0]


@pytest.mark.usefixtures("clock")  # the codes of T0
def test_codes_at_login_are_kept_wrong_right_and_recovery(alice):
    setup, codes = turned_on(alice)
    phone = from_("192.0.2.10")
    log_in(phone, "alice", "alice-password-1")
    enter_code(phone, code(setup.secret, steps=5))
    enter_code(phone, codes[0])
    assert kinds(alice) == ["wrong_code", "signed_in", "recovery_code_used"]


@pytest.mark.usefixtures("clock")  # the codes of T0
def test_an_admins_reset_is_kept_with_who_did_it(client, dana, alice):
    turned_on(alice)
    client.force_login(dana)
    client.post(
        reverse("admin:auth_user_changelist"),
        {"action": "reset_two_factor", "_selected_action": [alice.pk]},
    )
    event = AccountEvent.objects.get(user=alice)
    assert (event.kind, event.by) == (AccountEvent.TWO_FACTOR_RESET, dana)
    page = from_("192.0.2.10")
    log_in(page, "alice", "alice-password-1")
    assert "Two-step verification reset by an admin (dana)" in page.get(SECURITY).text


def test_admins_read_everyones_activity_and_change_none_of_it(client, dana, alice):
    log_in(from_("203.0.113.66"), "alice", "guess")
    log_in(from_("203.0.113.66"), "nobody", "guess")
    client.force_login(dana)
    listing = client.get(reverse("admin:drafts_accountevent_changelist"))
    assert listing.status_code == 200
    assert listing.text.count("203.0.113.66") >= 2
    found = client.get(reverse("admin:drafts_accountevent_changelist"), {"q": "203.0.113.66"})
    assert found.context["cl"].result_count == 2
    filtered = client.get(reverse("admin:drafts_accountevent_changelist"), {"kind": "signed_in"})
    assert [e.user for e in filtered.context["cl"].result_list] == [dana]
    assert "Add account event" not in listing.text
    event = AccountEvent.objects.filter(user=alice).get()
    assert client.get(reverse("admin:drafts_accountevent_add")).status_code == 403
    delete = reverse("admin:drafts_accountevent_delete", args=[event.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert AccountEvent.objects.filter(pk=event.pk).exists()


def test_reviewers_do_not_see_the_admins_list(client, alice):
    client.force_login(alice)
    answer = client.get(reverse("admin:drafts_accountevent_changelist"))
    assert answer.status_code == 302  # to the login: reviewers have no admin


def test_events_older_than_the_days_kept_are_forgotten_every_night(alice, settings):
    old = AccountEvent.objects.create(user=alice, kind=AccountEvent.SIGNED_IN)
    AccountEvent.objects.filter(pk=old.pk).update(at=timezone.now() - timedelta(days=181))
    recent = AccountEvent.objects.create(user=alice, kind=AccountEvent.WRONG_PASSWORD)
    AccountEvent.objects.filter(pk=recent.pk).update(at=timezone.now() - timedelta(days=179))
    settings.REPLYHUB_ACCOUNT_ACTIVITY_DAYS = 0  # for ever
    assert forget_old_events() == 0
    settings.REPLYHUB_ACCOUNT_ACTIVITY_DAYS = 180
    assert forget_old_events() == 1
    assert list(AccountEvent.objects.values_list("pk", flat=True)) == [recent.pk]
    assert "drafts.account_activity.forget_old_events" in [func for func, *_ in NIGHTLY]

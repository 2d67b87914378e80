"""Where a person is signed in: their sessions on the Account security page, signing one
(or all the others) out, and the sign-outs that two-step verification and admins cause."""

from __future__ import annotations

import importlib
import re
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from drafts import signed_in, two_factor
from drafts.signed_in import SignedInSession, describe_browser
from drafts.two_factor import TwoFactor, totp

pytestmark = pytest.mark.django_db

SECURITY = "/account/security/"
FIREFOX_WINDOWS = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
CHROME_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
EDGE_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
)
WECHAT_ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; V2309A) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/116.0.0.0 Mobile Safari/537.36 MicroMessenger/8.0.50"
)


def browser(user: User, agent: str = FIREFOX_WINDOWS, address: str = "192.0.2.10") -> Client:
    """A browser of its own, logged in through the login form."""
    client = Client(HTTP_USER_AGENT=agent, REMOTE_ADDR=address)
    answer = client.post(
        reverse("login"), {"username": user.username, "password": f"{user.username}-password-1"}
    )
    assert answer.status_code == 302, answer.content
    return client


def signed_in_as(client: Client) -> bool:
    """Whether the client's next page is a page of ReplyHub rather than the login form."""
    return client.get(reverse("queue")).status_code == 200


def rows(page: str) -> list[str]:
    """The sessions table's rows, as text."""
    table = page.split('<table class="sessions">')[1].split("</table>")[0]
    return [
        " ".join(re.sub(r"<[^>]+>", " ", row).split())
        for row in re.findall(r"<tr[^>]*data-session[^>]*>(.*?)</tr>", table, re.S)
    ]


def change_password(client: Client, old: str, new: str, **kwargs: object):
    """The password form of the Account security page."""
    form = {"action": "password", "old_password": old, "new_password1": new, "new_password2": new}
    return client.post(SECURITY, form, **kwargs)


def record_of(client: Client) -> SignedInSession:
    return SignedInSession.objects.get(session_key=client.session.session_key)


def test_the_page_lists_where_the_user_is_signed_in(alice):
    office = browser(alice, FIREFOX_WINDOWS, "192.0.2.10")
    browser(alice, CHROME_MAC, "198.51.100.7")
    listed = rows(office.get(SECURITY).text)
    assert len(listed) == 2
    assert any(row.startswith("Chrome on macOS 198.51.100.7") for row in listed)
    [this] = [row for row in listed if "This browser" in row]
    assert this.startswith("Firefox on Windows This browser 192.0.2.10")
    assert "Sign out" not in this  # logging out is what the Log out button is for
    page = office.get(SECURITY).text
    assert "Sign out everywhere else" in page
    assert "autofocus" not in page  # the password form leaves two-step verification first


def test_signing_out_another_session_ends_it_there(alice):
    office, laptop = browser(alice), browser(alice, CHROME_MAC)
    answer = office.post(
        SECURITY, {"action": "sign_out", "session": record_of(laptop).pk}, follow=True
    )
    assert "1 other session was signed out." in answer.text
    assert not signed_in_as(laptop)
    assert laptop.get(reverse("queue")).url.startswith(reverse("login"))
    assert signed_in_as(office)
    assert len(rows(office.get(SECURITY).text)) == 1


def test_sign_out_everywhere_else_keeps_this_browser(alice, bob):
    office, laptop, phone = (
        browser(alice),
        browser(alice, CHROME_MAC),
        browser(alice, SAFARI_IPHONE),
    )
    colleague = browser(bob)
    answer = office.post(SECURITY, {"action": "sign_out_others"}, follow=True)
    assert "2 other sessions were signed out." in answer.text
    assert [signed_in_as(c) for c in (office, laptop, phone, colleague)] == [
        True,
        False,
        False,
        True,
    ]


def test_nobody_signs_out_someone_elses_session(alice, bob):
    office, colleague = browser(alice), browser(bob)
    answer = office.post(
        SECURITY, {"action": "sign_out", "session": record_of(colleague).pk}, follow=True
    )
    assert "That session had already ended." in answer.text
    assert signed_in_as(colleague)


def test_turning_on_two_step_verification_signs_out_the_other_sessions(alice, monkeypatch):
    monkeypatch.setattr(two_factor, "time", SimpleNamespace(time=lambda: 1_800_000_000.0))
    office, laptop = browser(alice), browser(alice, CHROME_MAC)
    office.get(SECURITY)
    secret = TwoFactor.objects.get(user=alice).secret
    answer = office.post(SECURITY, {"action": "enable", "code": totp(secret, 60_000_000)})
    assert "Two-step verification is on." in answer.text
    assert "1 other session was signed out." in answer.text
    assert not signed_in_as(laptop)  # it had only the password behind it
    assert signed_in_as(office)


def test_an_admin_resetting_two_step_verification_signs_the_user_out(alice, dana):
    TwoFactor.objects.create(user=alice, confirmed_at=timezone.now())
    lost_phone = Client()
    lost_phone.force_login(alice)
    admin = Client()
    admin.force_login(dana)
    answer = admin.post(
        reverse("admin:auth_user_changelist"),
        {"action": "reset_two_factor", "_selected_action": [alice.pk]},
        follow=True,
    )
    assert "they are signed out everywhere" in answer.text
    assert not signed_in_as(lost_phone)


def test_an_admin_signs_someone_out_everywhere_and_sees_where_they_were(alice, bob, dana):
    office, laptop, colleague = browser(alice), browser(alice, CHROME_MAC), browser(bob)
    admin = Client()
    admin.force_login(dana)
    page = admin.get(reverse("admin:auth_user_change", args=[alice.pk])).text
    assert "Signed-in sessions" in page
    assert "Firefox on Windows" in page and "Chrome on macOS" in page
    answer = admin.post(
        reverse("admin:auth_user_changelist"),
        {"action": "sign_out_everywhere", "_selected_action": [alice.pk]},
        follow=True,
    )
    assert "Signed out: alice (2)." in answer.text
    assert [signed_in_as(c) for c in (office, laptop, colleague)] == [False, False, True]


def test_sessions_from_before_a_password_change_leave_the_list(alice):
    office, laptop = browser(alice), browser(alice, CHROME_MAC)
    alice.set_password("alice-password-1")  # as an admin would: a new hash, the old sessions end
    alice.save()
    phone = browser(alice, SAFARI_IPHONE)
    assert [row.split(" 192.")[0] for row in rows(phone.get(SECURITY).text)] == [
        "Safari on iPhone This browser"
    ]
    assert not Session.objects.filter(session_key=laptop.session.session_key).exists()
    assert not signed_in_as(office)


def test_logging_out_removes_the_session_from_the_list(alice):
    office, laptop = browser(alice), browser(alice, CHROME_MAC)
    laptop.post(reverse("logout"))
    assert len(rows(office.get(SECURITY).text)) == 1


def test_last_activity_is_noted_every_few_minutes_with_the_address(alice, monkeypatch):
    office = browser(alice, address="192.0.2.10")
    record = record_of(office)
    office.get(reverse("queue"), REMOTE_ADDR="203.0.113.5")
    assert record_of(office).ip_address == "192.0.2.10"  # noted at login, minutes ago at most
    monkeypatch.setattr(signed_in, "SEEN_EVERY", 0)
    office.get(reverse("queue"), REMOTE_ADDR="203.0.113.5")
    later = record_of(office)
    assert later.ip_address == "203.0.113.5"
    assert later.last_seen_at > record.last_seen_at


def test_a_session_from_before_the_records_is_recorded_on_its_next_page(alice):
    client = Client(HTTP_USER_AGENT=EDGE_WINDOWS)
    client.force_login(alice)
    SignedInSession.objects.all().delete()
    session = client.session
    session.pop(signed_in.SEEN_KEY, None)
    session.save()
    client.get(reverse("queue"))
    assert record_of(client).browser == "Edge on Windows"


def test_the_migration_records_the_sessions_open_at_the_upgrade(alice, bob):
    office, colleague = browser(alice), browser(bob)
    anonymous = Client()
    anonymous.get(reverse("login"))  # a session without a user
    SignedInSession.objects.all().delete()
    migration = importlib.import_module("drafts.migrations.0038_signed_in_sessions")
    migration.record_open_sessions(apps, None)
    recorded = dict(SignedInSession.objects.values_list("session_key", "user__username"))
    assert recorded == {
        office.session.session_key: "alice",
        colleague.session.session_key: "bob",
    }
    office.post(SECURITY, {"action": "sign_out_others"})
    assert signed_in_as(colleague)  # bob's, not alice's


@pytest.mark.parametrize(
    ("agent", "shown"),
    [
        (FIREFOX_WINDOWS, "Firefox on Windows"),
        (CHROME_MAC, "Chrome on macOS"),
        (EDGE_WINDOWS, "Edge on Windows"),
        (SAFARI_IPHONE, "Safari on iPhone"),
        (WECHAT_ANDROID, "Chrome on Android"),
        ("curl/8.5.0", "curl"),
        ("", "Unknown browser"),
    ],
)
def test_browsers_are_named_as_people_know_them(agent, shown):
    assert describe_browser(agent) == shown


def test_a_password_change_signs_out_the_other_sessions_and_keeps_this_one(alice):
    office, laptop = browser(alice), browser(alice, CHROME_MAC)
    answer = change_password(
        office, "alice-password-1", "correct horse battery staple", follow=True
    )
    assert "Your password is changed. 1 other session was signed out." in answer.text
    assert signed_in_as(office) and not signed_in_as(laptop)
    assert [row.split(" This browser")[0] for row in rows(office.get(SECURITY).text)] == [
        "Firefox on Windows"
    ]
    alice.refresh_from_db()
    assert alice.check_password("correct horse battery staple")


def test_a_wrong_current_password_changes_nothing_and_counts_toward_the_lock(alice):
    office = browser(alice)
    answer = change_password(office, "not-it", "correct horse battery staple")
    assert answer.status_code == 400
    assert "Your old password was entered incorrectly." in answer.text
    alice.refresh_from_db()
    assert alice.check_password("alice-password-1")
    for _ in range(10):
        office.post(SECURITY, {"action": "password", "old_password": "not-it"})
    assert office.post(SECURITY, {"action": "password"}).status_code == 429


def test_a_weak_new_password_is_refused_by_the_validators(alice):
    office = browser(alice)
    answer = change_password(office, "alice-password-1", "12345678")
    assert answer.status_code == 400
    assert "This password is too common." in answer.text

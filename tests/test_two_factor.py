"""Two-step verification: an authenticator app's code after the password, recovery codes,
REPLYHUB_REQUIRE_2FA, admin resets, and no way around it through the Django admin."""

from __future__ import annotations

import base64
import html
import io
import os
import re
import subprocess
import sys
from types import SimpleNamespace
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from django.conf import settings as django_settings
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone, translation

from drafts import login as login_module
from drafts import sealing, two_factor
from drafts.api.tokens import ApiToken
from drafts.models import Draft, StaffProfile
from drafts.two_factor import RecoveryCode, TwoFactor, totp
from replyhub.checks import check_two_factor_required
from tests.conftest import all_at_once, make_ready_draft

pytestmark = pytest.mark.django_db

# A fixed clock for the app's codes: step 60,000,000 begins at this second.
T0 = 1_800_000_000
SETUP = "/account/security/"


@pytest.fixture(autouse=True)
def _forget_these_failed_logins():
    """The lock's counters live in the cache; these tests' users start with none."""
    yield
    cache.delete_many([f"login-failures:user:{name}" for name in ("dana", "erin", "root")])


@pytest.fixture
def clock(monkeypatch) -> SimpleNamespace:
    """The time the code checks see (``clock.now``, in Unix seconds), movable by a test."""
    clock = SimpleNamespace(now=float(T0))
    monkeypatch.setattr(two_factor, "time", SimpleNamespace(time=lambda: clock.now))
    return clock


@pytest.fixture
def erin(db) -> User:
    """A second admin by role."""
    user = User.objects.create_user("erin", password="erin-password-1")
    StaffProfile.objects.create(user=user, role=StaffProfile.ADMIN)
    return User.objects.get(pk=user.pk)


@pytest.fixture
def root(db) -> User:
    return User.objects.create_superuser("root", "root@acme.example", "root-password-1")


def password_of(user: User) -> str:
    return f"{user.username}-password-1"


def code(secret: str, now: float = T0, steps: int = 0) -> str:
    """What the user's app shows at ``now`` (``steps`` 30-second steps later)."""
    return totp(secret, int(now // 30) + steps)


def turned_on(user: User) -> tuple[TwoFactor, list[str]]:
    """Two-step verification already set up for ``user``, with their recovery codes."""
    setup = TwoFactor.objects.create(user=user, confirmed_at=timezone.now())
    return setup, setup.new_recovery_codes()


def log_in(client: Client, user: User, next_url: str = ""):
    """The password step of the login form."""
    data = {"username": user.username, "password": password_of(user)}
    if next_url:
        data["next"] = next_url
    return client.post(reverse("login"), data)


def enter_code(client: Client, value: str):
    return client.post(reverse("login_code"), {"code": value})


def logged_in_as(client: Client) -> str | None:
    return client.session.get("_auth_user_id")


def shown_secret(page: str) -> str:
    """The setup key as the page shows it, for typing into an app by hand."""
    return re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")


def shown_recovery_codes(page: str) -> list[str]:
    return re.findall(r"<li><code>([a-z0-9-]{14})</code></li>", page)


# --- The codes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "unix_time, expected",
    [
        (59, "94287082"),
        (1111111109, "07081804"),
        (1111111111, "14050471"),
        (1234567890, "89005924"),
        (2000000000, "69279037"),
        (20000000000, "65353130"),
    ],
)
def test_the_codes_are_rfc_6238s(unix_time, expected):
    """RFC 6238, appendix B: the SHA-1 test vectors (8 digits, the key "1234567890" twice)."""
    secret = base64.b32encode(b"12345678901234567890").decode()
    assert totp(secret, unix_time // 30, digits=8) == expected
    assert totp(secret, unix_time // 30) == expected[-6:]


def test_a_code_is_accepted_from_the_step_before_or_after_but_not_further(alice, clock):
    setup, _ = turned_on(alice)
    assert not setup.verify(code(setup.secret, steps=-2))
    assert setup.verify(code(setup.secret, steps=-1))
    assert setup.verify(code(setup.secret))
    assert setup.verify(code(setup.secret, steps=1))
    assert not setup.verify(code(setup.secret, steps=2))


def test_a_code_cannot_be_used_twice_nor_an_earlier_one(alice, clock):
    setup, _ = turned_on(alice)
    assert setup.verify(code(setup.secret))
    assert not setup.verify(code(setup.secret))
    assert not TwoFactor.objects.get(pk=setup.pk).verify(code(setup.secret, steps=-1))
    clock.now += 30
    assert setup.verify(code(setup.secret, now=clock.now))


@pytest.mark.django_db(transaction=True)
def test_two_logins_racing_with_one_code_let_exactly_one_in(alice, clock):
    setup, _ = turned_on(alice)
    current = code(setup.secret)
    first, second = TwoFactor.objects.get(pk=setup.pk), TwoFactor.objects.get(pk=setup.pk)
    results = all_at_once(lambda: first.verify(current), lambda: second.verify(current))
    assert sorted(results) == [False, True]


# --- Turning it on -------------------------------------------------------------------------


def test_the_account_security_page_is_linked_from_the_top_bar(alice_client):
    assert f'<a href="{SETUP}">Account security</a>' in alice_client.get(reverse("queue")).text


def test_a_user_turns_it_on_with_a_code_from_the_secret_shown(alice_client, alice, clock):
    page = alice_client.get(SETUP).text
    assert "<h2>Set up two-step verification</h2>" in page
    assert re.search(r'<div class="qr"><svg [^>]*viewBox="[^"]+"[^>]*><path d="M', page)
    secret = shown_secret(page)
    uri = urlsplit(html.unescape(re.search(r'<code class="uri">([^<]+)</code>', page).group(1)))
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert unquote(uri.path) == "/ReplyHub (Acme Cloud):alice"
    query = {key: values[0] for key, values in parse_qs(uri.query).items()}
    assert query == {
        "secret": secret,
        "issuer": "ReplyHub (Acme Cloud)",
        "algorithm": "SHA1",
        "digits": "6",
        "period": "30",
    }

    answer = alice_client.post(SETUP, {"action": "enable", "code": code(secret)})
    assert answer.status_code == 200
    assert "Two-step verification is on." in answer.text
    assert "They are shown only this once." in answer.text
    codes = shown_recovery_codes(answer.text)
    assert len(codes) == 10 == len(set(codes))
    assert TwoFactor.objects.get(user=alice).enabled
    again = alice_client.get(SETUP).text
    assert "10 unused recovery codes left." in again
    assert "totp-secret" not in again and "<svg" not in again  # the secret is not shown again
    assert not any(c in again for c in codes)
    entry = LogEntry.objects.get(object_id=str(alice.pk))
    assert (entry.user, entry.change_message) == (alice, "Turned two-step verification on.")


def test_a_wrong_code_is_refused_and_leaves_it_off(alice_client, alice, clock):
    secret = shown_secret(alice_client.get(SETUP).text)
    wrong = f"{(int(code(secret)) + 1) % 1_000_000:06d}"
    answer = alice_client.post(SETUP, {"action": "enable", "code": wrong})
    assert "That code is not right, so two-step verification is still off." in answer.text
    assert shown_secret(answer.text) == secret  # the same key: the app already has it
    assert shown_recovery_codes(answer.text) == []
    assert not TwoFactor.objects.get(user=alice).enabled
    assert log_in(Client(), alice)["Location"] == reverse("queue")  # no code asked for


def test_recovery_codes_are_kept_only_as_hashes(alice, clock):
    setup, codes = turned_on(alice)
    stored = list(RecoveryCode.objects.filter(two_factor=setup).values_list("code_hash", flat=True))
    assert len(stored) == 10
    assert not {c.replace("-", "") for c in codes} & set(stored)
    assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in stored)


# --- Logging in ------------------------------------------------------------------------------


def test_logging_in_asks_for_the_code_after_the_password(client, alice, clock):
    setup, _ = turned_on(alice)
    response = log_in(client, alice)
    assert response["Location"] == reverse("login_code")
    assert logged_in_as(client) is None
    assert client.get(reverse("queue"))["Location"].startswith(reverse("login"))
    page = client.get(reverse("login_code")).text
    assert "and enter the 6-digit code it shows for ReplyHub." in page
    response = enter_code(client, code(setup.secret))
    assert response["Location"] == reverse("queue")
    assert logged_in_as(client) == str(alice.pk)
    assert client.get(reverse("queue")).status_code == 200


def test_the_page_asked_for_before_logging_in_is_kept(client, alice, clock):
    setup, _ = turned_on(alice)
    log_in(client, alice, next_url=reverse("upload"))
    assert enter_code(client, code(setup.secret))["Location"] == reverse("upload")


def test_a_wrong_code_does_not_log_in(client, alice, clock):
    setup, _ = turned_on(alice)
    log_in(client, alice)
    response = enter_code(client, code(setup.secret, steps=5))
    assert response.status_code == 200
    assert "That code is not right." in response.text
    assert logged_in_as(client) is None


def test_wrong_codes_count_toward_the_lockout(client, alice, clock, settings):
    settings.REPLYHUB_LOGIN_ATTEMPTS = 3
    setup, codes = turned_on(alice)
    log_in(client, alice)
    enter_code(client, "000000" if code(setup.secret) != "000000" else "111111")
    enter_code(client, "not-a-recovery-code")
    enter_code(client, "123 456")
    locked = enter_code(client, code(setup.secret))
    assert locked.status_code == 429
    assert "Too many failed logins. Try again in 15 minutes" in locked.text
    assert logged_in_as(client) is None
    assert enter_code(client, codes[0]).status_code == 429
    # The password form is locked for the account too, from any other browser.
    again = log_in(Client(), alice)
    assert again.status_code == 429 and "Too many failed logins" in again.text


def test_a_correct_password_does_not_reset_the_count_of_wrong_codes(client, alice, clock, settings):
    settings.REPLYHUB_LOGIN_ATTEMPTS = 3
    setup, _ = turned_on(alice)
    for _ in range(3):
        log_in(client, alice)  # each time the password is right…
        enter_code(client, "999999" if code(setup.secret) != "999999" else "888888")
    assert log_in(client, alice).status_code == 429  # …and the guesses still add up


def test_a_code_used_to_log_in_cannot_be_used_again(alice, clock):
    setup, _ = turned_on(alice)
    first, second = Client(), Client()
    log_in(first, alice)
    log_in(second, alice)
    assert enter_code(first, code(setup.secret)).status_code == 302
    replayed = enter_code(second, code(setup.secret))
    assert replayed.status_code == 200 and "That code is not right." in replayed.text
    assert logged_in_as(second) is None


def test_a_recovery_code_works_once(alice, clock):
    setup, codes = turned_on(alice)
    client = Client()
    log_in(client, alice)
    assert enter_code(client, codes[3].upper().replace("-", " ")).status_code == 302
    assert logged_in_as(client) == str(alice.pk)
    assert setup.recovery_codes_left() == 9
    other = Client()
    log_in(other, alice)
    assert "That code is not right." in enter_code(other, codes[3]).text
    assert logged_in_as(other) is None


def test_a_pending_login_expires_after_five_minutes(client, alice, clock, monkeypatch):
    setup, _ = turned_on(alice)
    real_time = login_module.time.time
    log_in(client, alice)
    later = SimpleNamespace(time=lambda: real_time() + 5 * 60 + 1)
    monkeypatch.setattr(login_module, "time", later)
    response = client.post(reverse("login_code"), {"code": code(setup.secret)}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("login")
    assert "The code was not entered within 5 minutes. Log in again." in response.text
    assert logged_in_as(client) is None
    assert "two-factor-pending" not in client.session


def test_the_code_page_without_a_password_first_goes_to_the_login(client, alice, clock):
    turned_on(alice)
    assert client.get(reverse("login_code"))["Location"] == reverse("login")
    assert client.post(reverse("login_code"), {"code": "123456"})["Location"] == reverse("login")


def test_a_password_changed_meanwhile_voids_the_pending_login(client, alice, clock):
    setup, _ = turned_on(alice)
    log_in(client, alice)
    alice.set_password("a-new-password-2")
    alice.save()
    assert enter_code(client, code(setup.secret))["Location"] == reverse("login")
    assert logged_in_as(client) is None


# --- Changing it ----------------------------------------------------------------------------


def test_new_recovery_codes_need_a_current_code_or_the_password(alice_client, alice, clock):
    setup, old = turned_on(alice)
    refused = alice_client.post(SETUP, {"action": "recovery_codes", "confirmation": "guess"})
    assert "That is neither a current code from your app nor your password." in refused.text
    assert shown_recovery_codes(refused.text) == []
    answer = alice_client.post(
        SETUP, {"action": "recovery_codes", "confirmation": password_of(alice)}
    )
    new = shown_recovery_codes(answer.text)
    assert len(new) == 10 and not set(new) & set(old)
    assert not setup.use_recovery_code(old[0])
    assert setup.use_recovery_code(new[0])


def test_turning_it_off_needs_a_current_code_or_the_password(alice_client, alice, clock):
    setup, _ = turned_on(alice)
    alice_client.post(SETUP, {"action": "disable", "confirmation": "wrong-password"})
    assert TwoFactor.objects.get(user=alice).enabled
    answer = alice_client.post(
        SETUP, {"action": "disable", "confirmation": code(setup.secret)}, follow=True
    )
    assert "Two-step verification is off." in answer.text
    assert "<h2>Set up two-step verification</h2>" in answer.text
    assert not TwoFactor.objects.filter(user=alice, confirmed_at__isnull=False).exists()
    assert log_in(Client(), alice)["Location"] == reverse("queue")


# --- Who must use it -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "policy, must",
    [
        ("none", set()),
        ("admins", {"dana", "root"}),
        ("staff", {"carol", "dana", "root"}),
        ("all", {"alice", "carol", "dana", "root"}),
    ],
)
def test_the_policy_says_who_must_use_it(policy, must, settings, alice, carol, dana, root):
    settings.REPLYHUB_REQUIRE_2FA = policy
    users = (alice, carol, dana, root)
    assert {u.username for u in users if two_factor.required_for(u)} == must


def test_a_user_who_must_use_it_can_only_set_it_up(client, alice, mailbox, settings, clock):
    settings.REPLYHUB_REQUIRE_2FA = "all"
    draft = make_ready_draft(mailbox)
    response = log_in(client, alice, next_url=reverse("upload"))
    assert response["Location"] == f"{SETUP}?next=%2Fimport%2F"
    assert logged_in_as(client) == str(alice.pk)  # a session that reaches only the setup
    for url in (reverse("queue"), reverse("draft", args=[draft.pk]), reverse("stats"), "/admin/"):
        assert client.get(url)["Location"] == f"{SETUP}?next={url.replace('/', '%2F')}", url
    action = client.post(
        reverse("draft_action", args=[draft.pk]), {"action": "approve", "reply_text": "Hi"}
    )
    assert action["Location"] == SETUP
    assert Draft.objects.get(pk=draft.pk).status == Draft.READY
    page = client.get(f"{SETUP}?next=/import/").text
    assert "Your role requires two-step verification. Set it up to go on using ReplyHub." in page
    switched = client.post(reverse("set_language"), {"language": "en", "next": SETUP})
    assert switched["Location"] == SETUP

    answer = client.post(
        SETUP, {"action": "enable", "code": code(shown_secret(page)), "next": "/import/"}
    )
    assert len(shown_recovery_codes(answer.text)) == 10
    assert '<a class="button primary" href="/import/">Continue</a>' in answer.text
    assert client.get(reverse("upload")).status_code == 200


def test_a_user_who_must_use_it_can_still_log_out(client, alice, settings):
    settings.REPLYHUB_REQUIRE_2FA = "all"
    log_in(client, alice)
    assert client.post(reverse("logout"))["Location"] == reverse("login")
    assert logged_in_as(client) is None


def test_api_tokens_are_not_affected(client, alice, mailbox, settings):
    settings.REPLYHUB_REQUIRE_2FA = "all"
    _, secret = ApiToken.issue(alice, "CRM sync")
    log_in(client, alice)  # the session cookie of a user without 2FA is sent along: ignored
    response = client.get("/api/v1/drafts", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 200
    assert client.get(reverse("api_tokens"))["Location"].startswith(SETUP)


@pytest.mark.parametrize("value", ["everyone", "yes"])
def test_a_bad_policy_is_refused_at_startup_by_name(value):
    env = {**os.environ, "REPLYHUB_REQUIRE_2FA": value}
    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=django_settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    assert f"REPLYHUB_REQUIRE_2FA must be none, admins, staff or all, not {value!r}." in (
        done.stderr
    )


def test_check_deploy_warns_while_nobody_must_use_it(settings):
    settings.REPLYHUB_REQUIRE_2FA = "none"
    assert [warning.id for warning in check_two_factor_required()] == ["replyhub.W011"]
    settings.REPLYHUB_REQUIRE_2FA = "admins"
    assert check_two_factor_required() == []


# --- The admin -------------------------------------------------------------------------------


def reset_in_admin(client: Client, *users: User):
    return client.post(
        reverse("admin:auth_user_changelist"),
        {"action": "reset_two_factor", "_selected_action": [u.pk for u in users]},
        follow=True,
    )


def test_an_admin_resets_a_reviewers_two_factor(client, dana, alice, clock):
    turned_on(alice)
    client.force_login(dana)
    listing = client.get(reverse("admin:auth_user_changelist")).text
    assert "Reset two-step verification (lost phone and recovery codes)" in listing
    page = reset_in_admin(client, alice)
    assert "Two-step verification reset for alice" in page.text
    assert not TwoFactor.objects.filter(user=alice).exists()
    assert not RecoveryCode.objects.exists()
    entry = LogEntry.objects.filter(object_id=str(alice.pk)).latest("action_time")
    assert entry.user == dana
    assert entry.change_message == "Reset two-step verification of alice."
    history = client.get(reverse("admin:auth_user_history", args=[alice.pk])).text
    assert "Reset two-step verification of alice." in history
    assert log_in(Client(), alice)["Location"] == reverse("queue")  # the password alone again


def test_only_a_superuser_resets_an_admins_two_factor(client, dana, erin, root, clock):
    turned_on(erin)
    client.force_login(dana)
    page = reset_in_admin(client, erin)
    assert "Only a superuser can reset an admin&#x27;s two-step verification: erin." in page.text
    assert TwoFactor.objects.get(user=erin).enabled
    client.force_login(root)
    assert "Two-step verification reset for erin" in reset_in_admin(client, erin).text
    assert not TwoFactor.objects.filter(user=erin).exists()


def test_the_admins_login_page_checks_no_passwords(client, root, settings):
    """Before, /admin/login/ was Django's own login: no lock, and (now) no code."""
    settings.REPLYHUB_LOGIN_ATTEMPTS = 3
    for _ in range(10):
        guess = client.post("/admin/login/?next=/admin/", {"username": "root", "password": "x"})
        assert guess.status_code == 302
        assert guess["Location"] == "/accounts/login/?next=%2Fadmin%2F"
    right = client.post(
        "/admin/login/?next=/admin/", {"username": "root", "password": "root-password-1"}
    )
    assert right["Location"] == "/accounts/login/?next=%2Fadmin%2F"
    assert logged_in_as(client) is None
    assert client.get("/admin/", follow=True).redirect_chain[-1][0] == (
        "/accounts/login/?next=%2Fadmin%2F"
    )


def test_the_admin_is_reached_through_our_login_with_lock_and_code(client, root, clock, settings):
    settings.REPLYHUB_LOGIN_ATTEMPTS = 3
    setup, _ = turned_on(root)
    login_page = client.get("/admin/", follow=True)
    assert login_page.redirect_chain[-1][0] == "/accounts/login/?next=%2Fadmin%2F"
    assert '<input type="hidden" name="next" value="/admin/">' in login_page.text
    log_in(client, root, next_url="/admin/")
    assert client.get("/admin/")["Location"].startswith("/admin/login/")  # not yet in
    assert enter_code(client, code(setup.secret))["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200

    intruder = Client()
    for _ in range(3):
        guess = {"username": "root", "password": "guess", "next": "/admin/"}
        intruder.post(reverse("login"), guess)
    assert log_in(intruder, root, next_url="/admin/").status_code == 429


# --- Chinese -----------------------------------------------------------------------------------


@pytest.fixture
def chinese() -> None:
    """A clean checkout has no .mo file: compile it (as tests/test_i18n.py does)."""
    call_command("compile_translations", stdout=io.StringIO())
    with override_settings(LOCALE_PATHS=list(django_settings.LOCALE_PATHS)):
        pass  # drops the catalogues Django may have cached before the .mo existed
    yield
    translation.deactivate()


def test_the_new_pages_are_in_chinese(client, alice, clock, chinese):
    StaffProfile.objects.create(user=alice, language="zh-hans")
    client.force_login(alice)
    page = client.get(SETUP).text
    assert "<title>账户安全 · ReplyHub</title>" in page
    assert "<h2>设置两步验证</h2>" in page
    assert "身份验证器应用" in page
    assert ">开启两步验证</button>" in page
    assert "Set up two-step verification" not in page
    secret = shown_secret(page)
    answer = client.post(SETUP, {"action": "enable", "code": code(secret)}).text
    assert "两步验证已开启。" in answer
    assert "<h2>您的恢复码</h2>" in answer
    assert "还剩 10 个未使用的恢复码。" in answer

    client.post(reverse("logout"))
    client.post(reverse("set_language"), {"language": "zh-hans", "next": "/"})
    log_in(client, alice)
    code_page = client.get(reverse("login_code")).text
    assert "<h1>两步验证</h1>" in code_page
    assert "验证码" in code_page and "恢复码" in code_page
    wrong = enter_code(client, "12345678").text
    assert "验证码不正确" in wrong


# --- Sealed at rest ------------------------------------------------------------------------

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def test_the_secret_is_kept_sealed_in_the_database(alice):
    setup, _ = turned_on(alice)
    secret = setup.secret
    stored = TwoFactor.objects.filter(pk=setup.pk).values()[0]
    assert secret not in str(stored)
    assert sealing.unseal(stored["sealed_secret"]) == secret


def test_after_a_key_rotation_with_a_fallback_codes_work_and_are_sealed_anew(
    client, alice, clock, settings
):
    setup, _ = turned_on(alice)
    old_key, sealed_before = settings.SECRET_KEY, setup.sealed_secret
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "a new key " * 6, [old_key]
    log_in(client, alice)
    assert enter_code(client, code(setup.secret))["Location"] == reverse("queue")
    setup.refresh_from_db()
    assert setup.sealed_secret != sealed_before
    settings.SECRET_KEY_FALLBACKS = []  # the old key can go now
    assert setup.secret and TwoFactor.objects.get(pk=setup.pk).readable


def test_without_the_old_key_the_page_says_so_and_recovery_codes_still_work(
    client, alice, clock, settings
):
    setup, codes = turned_on(alice)
    secret = setup.secret
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "a new key " * 6, []
    log_in(client, alice)
    refused = enter_code(client, code(secret))
    assert "Codes from your app cannot be checked on this server any more" in refused.text
    assert logged_in_as(client) is None
    assert enter_code(client, codes[0])["Location"] == reverse("queue")


def test_a_setup_shown_before_the_key_changed_starts_over_with_a_new_secret(alice, settings):
    shown = TwoFactor.setup_for(alice).secret
    settings.SECRET_KEY = "a new key " * 6
    again = TwoFactor.setup_for(alice)
    assert again.readable and again.secret != shown


@pytest.mark.django_db(transaction=True)
def test_the_upgrade_seals_the_secrets_already_stored(alice, clock):
    call_command("migrate", "drafts", "0042", verbosity=0)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO drafts_twofactor (user_id, secret, created_at, confirmed_at, "
                "last_used_step) VALUES (%s, %s, %s, %s, 0)",
                [alice.pk, SECRET, timezone.now(), timezone.now()],
            )
    finally:
        call_command("migrate", "drafts", verbosity=0)
    setup = TwoFactor.objects.get(user=alice)
    assert SECRET not in setup.sealed_secret and setup.secret == SECRET
    client = Client()
    log_in(client, alice)
    assert enter_code(client, code(SECRET))["Location"] == reverse("queue")

"""The page where people make and revoke their API tokens, in Django's test client and in
a real browser (Debian's Chromium, as in test_browser.py), and tokens in the admin."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from playwright.sync_api import Browser, expect

from drafts.api.tokens import ApiToken, hash_token
from drafts.models import StaffProfile
from tests.apiclient import Api
from tests.browser import Visitor, chromium

pytestmark = pytest.mark.django_db


def test_the_tokens_page_shows_a_new_secret_once_and_revokes(alice_client, alice):
    response = alice_client.post(
        reverse("api_tokens"), {"action": "create", "name": "CRM sync", "access": "read"}
    )
    assert response.status_code == 200
    token = ApiToken.objects.get(user=alice)
    secret = response.context["secret"]
    assert secret.startswith(f"rh_{token.prefix}_")
    assert secret in response.text
    assert token.access == ApiToken.READ
    assert token.token_hash == hash_token(secret)
    page = alice_client.get(reverse("api_tokens")).text
    assert "CRM sync" in page and secret not in page
    response = alice_client.post(
        reverse("api_tokens"), {"action": "revoke", "token": token.pk}, follow=True
    )
    assert "revoked" in response.text
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_a_signing_secret_sealed_with_a_key_that_is_gone_is_said_to_be_unreadable(
    alice_client, alice, settings
):
    token, _ = ApiToken.issue(alice, "CRM sync")
    page = alice_client.get(reverse("api_tokens")).text
    assert token.signing_secret in page
    settings.SECRET_KEY = "a new key " * 6
    alice_client.force_login(alice)  # sessions are signed with the key too
    page = alice_client.get(reverse("api_tokens")).text
    assert token.signing_secret not in page
    assert "It can no longer be read (the server's secret key changed)" in page


def test_nobody_revokes_someone_elses_token(alice_client, bob):
    token, _ = ApiToken.issue(bob, "bob's")
    response = alice_client.post(reverse("api_tokens"), {"action": "revoke", "token": token.pk})
    assert response.status_code == 404
    token.refresh_from_db()
    assert token.active


def test_a_superuser_makes_a_token_in_the_admin_and_sees_its_secret_once(client, alice):
    client.force_login(User.objects.create_superuser("root", password="root-password-1"))
    response = client.post(
        reverse("admin:drafts_apitoken_add"),
        {"user": alice.pk, "name": "Import job", "access": "write"},
    )
    assert response.status_code == 200
    token = ApiToken.objects.get(user=alice)
    secret = response.context["secret"]
    assert token.token_hash == hash_token(secret)
    assert Api(secret).get("/api/v1/drafts").status_code == 200
    page = client.get(reverse("admin:drafts_apitoken_change", args=[token.pk])).text
    assert token.prefix in page and secret not in page and token.token_hash not in page
    assert client.get(reverse("admin:drafts_apicallback_changelist")).status_code == 200
    client.post(
        reverse("admin:drafts_apitoken_changelist"),
        {"action": "revoke_tokens", "_selected_action": [token.pk]},
    )
    token.refresh_from_db()
    assert not token.active


def test_the_admin_role_cannot_make_tokens_for_others(client, db):
    admin = User.objects.create_user("dana", password="dana-password-1")
    StaffProfile.objects.create(user=admin, role=StaffProfile.ADMIN)
    client.force_login(admin)
    assert client.get(reverse("admin:drafts_mailbox_changelist")).status_code == 200
    assert client.get(reverse("admin:drafts_apitoken_add")).status_code == 403


# --- In a browser --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # As in tests/test_browser.py: Playwright's sync API marks its loop as running here.
    with pytest.MonkeyPatch.context() as patch, chromium() as browser:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield browser


def status_with(live_server, secret: str) -> int:
    """What the running server answers GET /api/v1/drafts with this token."""
    request = urllib.request.Request(
        f"{live_server.url}/api/v1/drafts", headers={"Authorization": f"Bearer {secret}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.django_db(transaction=True)
def test_in_a_browser_a_token_is_made_shown_once_and_revoked(browser, live_server, alice):
    visitor = Visitor(browser, live_server.url)
    try:
        page = visitor.log_in("alice")
        page.get_by_role("link", name="API tokens").click()
        expect(page.locator("h1")).to_have_text("API tokens")
        expect(page.locator("table.tokens td.empty")).to_have_text("You have no API tokens.")
        page.get_by_label("Name").fill("CRM sync")
        page.get_by_role("button", name="Create token").click()
        expect(page.locator(".new-token")).to_contain_text("shown only this once")
        secret = page.locator("#new-token-secret").inner_text()
        assert secret.startswith("rh_")
        assert status_with(live_server, secret) == 200

        page.goto("/account/tokens/")  # the list, later: the secret is gone for good
        expect(page.locator("#new-token-secret")).to_have_count(0)
        assert secret not in page.content()
        row = page.locator("table.tokens tr[data-token]")
        expect(row).to_have_count(1)
        expect(row).to_contain_text("CRM sync")
        expect(row).to_contain_text(secret[: len("rh_") + 8])  # the prefix tells it apart
        row.get_by_role("button", name="Revoke").click()
        expect(page.locator(".notice.success")).to_have_text(
            "Token “CRM sync” revoked: it no longer works."
        )
        expect(row).to_contain_text("Revoked")
        expect(row.get_by_role("button", name="Revoke")).to_have_count(0)
        assert status_with(live_server, secret) == 401
        assert visitor.foreign_requests() == []
    finally:
        visitor.close()

"""Who enters the Django admin, and what they may change there, follows the role."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.management.sql import emit_post_migrate_signal
from django.urls import reverse

from drafts.models import Mailbox, PromptTemplate, StaffProfile

pytestmark = pytest.mark.django_db


@pytest.fixture
def dana_client(client, dana):
    client.force_login(dana)
    return client


def test_an_admin_edits_templates_mailboxes_and_users(dana_client):
    index = dana_client.get(reverse("admin:index"))
    assert index.status_code == 200
    for name in ("Prompt templates", "Mailboxes", "Sampling rules", "Users"):
        assert name in index.text
    response = dana_client.post(
        reverse("admin:drafts_mailbox_add"),
        {
            "name": "sales",
            "address": "sales@acme.example",
            "imap_port": 993,
            "imap_security": "ssl",
            "imap_password_env": "IMAP_PASSWORD",
            "imap_folder": "INBOX",
            "send_limit_per_minute": 0,
            # The form's initial working week, as the page sends it back.
            "working_days": ["1", "2", "3", "4", "5"],
            "opens_at": "09:00",
            "closes_at": "18:00",
        },
    )
    assert Mailbox.objects.filter(name="sales").exists(), response.text[:2000]
    template = PromptTemplate.objects.first()
    page = dana_client.get(reverse("admin:drafts_prompttemplate_change", args=[template.pk]))
    assert page.status_code == 200 and 'name="reply_prompt"' in page.text


def test_records_are_read_only_for_an_admin(dana_client, mailbox):
    from tests.conftest import make_ready_draft

    draft = make_ready_draft(mailbox)
    page = dana_client.get(reverse("admin:drafts_draft_change", args=[draft.pk]))
    assert page.status_code == 200 and 'name="reply_text"' not in page.text
    assert dana_client.get(reverse("admin:drafts_draft_delete", args=[draft.pk])).status_code == 403


@pytest.mark.parametrize("fixture", ["alice", "carol"])
def test_reviewers_and_supervisors_stay_out_of_the_admin(client, fixture, request):
    user = request.getfixturevalue(fixture)
    client.force_login(user)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert 'href="/admin/"' not in client.get(reverse("queue")).text


def test_an_admin_cannot_make_anyone_a_superuser(dana_client, dana, alice):
    page = dana_client.get(reverse("admin:auth_user_change", args=[alice.pk]))
    assert 'name="is_superuser"' not in page.text and 'name="groups"' not in page.text
    form = {
        "username": "alice",
        "is_active": "on",
        "is_superuser": "on",
        "is_staff": "on",
        "last_login_0": "",
        "last_login_1": "",
        "date_joined_0": "2026-11-26",
        "date_joined_1": "08:00:00",
        "profile-TOTAL_FORMS": "1",
        "profile-INITIAL_FORMS": "0",
        "profile-MIN_NUM_FORMS": "0",
        "profile-MAX_NUM_FORMS": "1",
        "profile-0-role": "reviewer",
        "profile-0-language": "en",
    }
    dana_client.post(reverse("admin:auth_user_change", args=[alice.pk]), form)
    alice.refresh_from_db()
    assert not alice.is_superuser and not alice.is_staff


def test_superusers_are_not_listed_to_an_admin(dana_client):
    User.objects.create_superuser("root", password="root-password-1")
    listing = dana_client.get(reverse("admin:auth_user_changelist"))
    assert "dana" in listing.text and "root" not in listing.text
    root = User.objects.get(username="root")
    assert dana_client.get(reverse("admin:auth_user_change", args=[root.pk])).status_code == 302


def test_changing_the_role_opens_and_closes_the_admin(client, alice):
    profile = StaffProfile.objects.create(user=alice, role=StaffProfile.ADMIN)
    client.force_login(alice)
    assert client.get(reverse("admin:index")).status_code == 200
    profile.role = StaffProfile.SUPERVISOR
    profile.save()
    assert client.get(reverse("admin:index")).status_code == 302
    alice.refresh_from_db()
    assert not alice.is_staff and not alice.groups.exists()


def test_admins_from_before_the_admin_role_opened_get_in_after_migrate(client, alice):
    StaffProfile.objects.bulk_create([StaffProfile(user=alice, role=StaffProfile.ADMIN)])
    client.force_login(alice)
    assert client.get(reverse("admin:index")).status_code == 302
    emit_post_migrate_signal(verbosity=0, interactive=False, db="default")
    assert client.get(reverse("admin:index")).status_code == 200

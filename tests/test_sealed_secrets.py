"""Secrets kept sealed at rest (drafts/sealing.py) beyond the authenticator apps': the chat
channels' URLs and secrets and the API tokens' callback signing secrets. The upgrade seals
those already stored (and the downgrade opens them again); `manage.py reseal_secrets`
moves everything to a new SECRET_KEY and names what no key opens any more."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from drafts import sealing
from drafts.api.tokens import ApiToken
from drafts.notify import NotificationChannel
from drafts.two_factor import TwoFactor

URL = "https://oapi.dingtalk.com/robot/send?access_token=tok-9f8e7d"
SECRET = "SEC0123456789abcdef"
SIGNING = "whsec_kept-across-the-upgrade"
BEFORE = ("drafts", "0044_own_replies")


def raw(sql: str) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


@pytest.mark.django_db(transaction=True)
def test_the_upgrade_seals_the_stored_secrets_and_the_downgrade_opens_them(mailbox, alice):
    call_command("migrate", "drafts", BEFORE[1], verbosity=0)
    try:
        old = MigrationExecutor(connection).loader.project_state(BEFORE).apps
        old.get_model("drafts", "NotificationChannel").objects.create(
            mailbox_id=mailbox.pk, name="客服群", kind="dingtalk", url=URL, secret=SECRET
        )
        old.get_model("drafts", "NotificationChannel").objects.create(
            mailbox_id=mailbox.pk, name="WeCom", kind="wecom", url=URL, secret=""
        )
        old.get_model("drafts", "ApiToken").objects.create(
            user_id=alice.pk, name="crm", prefix="abcd1234", token_hash="0" * 64,
            signing_secret=SIGNING,
        )  # fmt: skip
        call_command("migrate", "drafts", verbosity=0)
        stored = raw("SELECT url, secret FROM drafts_notificationchannel ORDER BY id")
        assert not any(URL in url or SECRET in secret for url, secret in stored)
        assert stored[1][1] == ""  # no secret stays no secret
        assert [(c.url, c.secret) for c in NotificationChannel.objects.order_by("id")] == [
            (URL, SECRET), (URL, ""),
        ]  # fmt: skip
        assert SIGNING not in str(raw("SELECT signing_secret FROM drafts_apitoken"))
        assert ApiToken.objects.get().signing_secret == SIGNING

        call_command("migrate", "drafts", BEFORE[1], verbosity=0)
        assert raw("SELECT url, secret FROM drafts_notificationchannel ORDER BY id") == [
            (URL, SECRET), (URL, ""),
        ]  # fmt: skip
        assert raw("SELECT signing_secret FROM drafts_apitoken") == [(SIGNING,)]
    finally:
        call_command("migrate", "drafts", verbosity=0)


def test_reseal_secrets_moves_everything_to_a_new_key(mailbox, alice, settings):
    NotificationChannel.objects.create(
        mailbox=mailbox, name="客服群", kind="dingtalk", url=URL, secret=SECRET
    )
    token, _ = ApiToken.issue(alice, "crm")
    totp = TwoFactor.setup_for(alice).secret
    old_key = settings.SECRET_KEY
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "a new key " * 6, [old_key]
    out = StringIO()
    call_command("reseal_secrets", stdout=out)
    assert out.getvalue() == (
        "Sealed anew with the current SECRET_KEY: API tokens 1, notification channels 1, "
        "two-step verifications 1.\n"
    )
    settings.SECRET_KEY_FALLBACKS = []  # the old key can go now
    channel = NotificationChannel.objects.get()
    assert (channel.url, channel.secret) == (URL, SECRET)
    assert ApiToken.objects.get().signing_secret == token.signing_secret
    assert TwoFactor.objects.get().secret == totp


def test_reseal_secrets_names_what_no_key_opens_and_keeps_it(mailbox, alice, settings):
    channel = NotificationChannel.objects.create(
        mailbox=mailbox, name="客服群", kind="dingtalk", url=URL, secret=SECRET
    )
    TwoFactor.setup_for(alice)
    old_key, sealed = settings.SECRET_KEY, raw("SELECT url, secret FROM drafts_notificationchannel")
    settings.SECRET_KEY = "a new key " * 6
    assert channel.unreadable() == []  # read before the change
    assert NotificationChannel.objects.get().unreadable() == ["URL", "secret"]
    out = StringIO()
    call_command("reseal_secrets", stdout=out)
    assert "Sealed anew with the current SECRET_KEY: nothing." in out.getvalue()
    assert (
        "No configured key opens these (sealed with a SECRET_KEY that is gone; put it back in "
        "SECRET_KEY_FALLBACKS and run again, or enter them anew): notification channel "
        f"{channel.pk} “客服群 (DingTalk custom robot)” (url, secret); two-step verification "
        "of alice"
    ) in out.getvalue()
    assert raw("SELECT url, secret FROM drafts_notificationchannel") == sealed
    settings.SECRET_KEY_FALLBACKS = [old_key]
    assert NotificationChannel.objects.get().url == URL
    assert sealing.lost(NotificationChannel.objects.get().url) is False

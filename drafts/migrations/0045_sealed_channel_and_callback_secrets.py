"""Chat channels' URLs and secrets and API tokens' callback signing secrets sealed at rest
(drafts/sealing.py): the columns become TEXT (a sealed value is longer than its
max_length), the stored values are sealed with the current SECRET_KEY, then the fields
become the sealed kinds (no change in the database)."""

from django.db import migrations, models

import drafts.api.tokens
import drafts.sealing

# (model, field, its definition after this migration; the one before is 0044's state)
FIELDS = [
    (
        "apitoken",
        "signing_secret",
        drafts.sealing.SealedCharField(
            default=drafts.api.tokens.new_signing_secret,
            editable=False,
            help_text="Callbacks made for this token are signed with it (HMAC-SHA256).",
            max_length=64,
        ),
    ),
    (
        "notificationchannel",
        "secret",
        drafts.sealing.SealedCharField(
            blank=True,
            help_text="DingTalk: the 加签 secret (starts with SEC), or empty if the robot "
            "checks keywords or IP addresses instead. WeCom: leave empty. Webhook: required; "
            "requests are signed with it (X-ReplyHub-Signature).",
            max_length=200,
        ),
    ),
    (
        "notificationchannel",
        "url",
        drafts.sealing.SealedURLField(
            help_text="DingTalk: https://oapi.dingtalk.com/robot/send?access_token=… · "
            "WeCom: https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=… · "
            "Webhook: your endpoint (https://…).",
            max_length=1000,
            verbose_name="URL",
        ),
    ),
]


def _convert(apps, schema_editor, change) -> None:
    for model_name, field, _ in FIELDS:
        model = apps.get_model("drafts", model_name)
        for pk, value in model.objects.exclude(**{field: ""}).values_list("pk", field):
            model.objects.filter(pk=pk).update(**{field: change(value)})
    if schema_editor.connection.vendor == "postgresql":
        # The updates left deferred foreign-key checks pending, and PostgreSQL alters no
        # table that has them (the downgrade's next step): check them now.
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def seal_existing(apps, schema_editor):
    _convert(apps, schema_editor, drafts.sealing.seal)


def unseal_existing(apps, schema_editor):
    _convert(apps, schema_editor, drafts.sealing.unseal)


class Migration(migrations.Migration):
    dependencies = [("drafts", "0044_own_replies")]

    operations = [
        *(
            migrations.AlterField(model_name=model, name=name, field=models.TextField(blank=True))
            for model, name, _ in FIELDS
        ),
        migrations.RunPython(seal_existing, unseal_existing),
        *(
            migrations.AlterField(model_name=model, name=name, field=sealed)
            for model, name, sealed in FIELDS
        ),
    ]

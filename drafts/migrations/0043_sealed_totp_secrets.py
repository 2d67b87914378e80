"""Authenticator secrets sealed at rest (drafts/sealing.py): each stored secret is sealed
with the current SECRET_KEY, then the readable column is dropped."""

from django.db import migrations, models

import drafts.two_factor


def seal_existing(apps, schema_editor):
    from drafts import sealing

    TwoFactor = apps.get_model("drafts", "TwoFactor")
    for two_factor in TwoFactor.objects.only("pk", "secret"):
        sealed = sealing.seal(two_factor.secret)
        TwoFactor.objects.filter(pk=two_factor.pk).update(sealed_secret=sealed)


def unseal_existing(apps, schema_editor):
    from drafts import sealing

    TwoFactor = apps.get_model("drafts", "TwoFactor")
    for two_factor in TwoFactor.objects.only("pk", "sealed_secret"):
        secret = sealing.unseal(two_factor.sealed_secret)
        TwoFactor.objects.filter(pk=two_factor.pk).update(secret=secret)


class Migration(migrations.Migration):
    dependencies = [("drafts", "0042_thread_subject_index")]

    operations = [
        migrations.AddField(
            model_name="twofactor",
            name="sealed_secret",
            field=models.TextField(default="", editable=False),
        ),
        migrations.RunPython(seal_existing, unseal_existing),
        migrations.RemoveField(model_name="twofactor", name="secret"),
        migrations.AlterField(
            model_name="twofactor",
            name="sealed_secret",
            field=models.TextField(default=drafts.two_factor.new_sealed_secret, editable=False),
        ),
    ]

"""Times to answer now count working hours for the mailboxes that count their reply targets
in them: the stored daily totals of such an install are counted again when next read."""

from django.db import migrations, models


def forget_summaries(apps, schema_editor) -> None:
    Mailbox = apps.get_model("drafts", "Mailbox")
    StatsDay = apps.get_model("drafts", "StatsDay")
    if Mailbox.objects.filter(working_hours_only=True).exists():
        StatsDay.objects.update(version=models.F("version") + 1)


class Migration(migrations.Migration):
    dependencies = [("drafts", "0038_signed_in_sessions")]

    operations = [migrations.RunPython(forget_summaries, migrations.RunPython.noop)]

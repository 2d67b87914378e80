"""The queue at 100,000 drafts: a draft knows its mailbox, whether it is flagged, and the
queue's filters are in its indexes, so that the page counts and pages without reading rows.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def copy_mailbox(apps: object, schema_editor: object) -> None:
    draft_model = apps.get_model("drafts", "Draft")
    message_model = apps.get_model("drafts", "Message")
    mailbox = message_model.objects.filter(pk=OuterRef("message_id")).values("mailbox_id")
    draft_model.objects.update(mailbox_id=Subquery(mailbox[:1]))


class Migration(migrations.Migration):
    dependencies = [
        ("drafts", "0010_message_search"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveIndex(model_name="draft", name="drafts_draf_status_727e33_idx"),
        migrations.AddField(
            model_name="draft",
            name="mailbox",
            field=models.ForeignKey(
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="drafts",
                to="drafts.mailbox",
            ),
        ),
        migrations.RunPython(copy_mailbox, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="draft",
            name="mailbox",
            field=models.ForeignKey(
                editable=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="drafts",
                to="drafts.mailbox",
            ),
        ),
        migrations.AddField(
            model_name="draft",
            name="flagged",
            field=models.GeneratedField(
                db_persist=True,
                expression=models.Q(("flags", []), _negated=True),
                output_field=models.BooleanField(),
            ),
        ),
        migrations.AddIndex(
            model_name="draft",
            index=models.Index(
                fields=["status", "created_at", "intent", "language", "flagged", "assigned_to"],
                name="draft_queue",
            ),
        ),
        migrations.AddIndex(
            model_name="draft",
            index=models.Index(
                fields=[
                    *("mailbox", "status", "created_at"),
                    *("intent", "language", "flagged", "assigned_to"),
                ],
                name="draft_mailbox_queue",
            ),
        ),
    ]

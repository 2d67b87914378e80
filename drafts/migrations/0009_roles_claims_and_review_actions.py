"""Roles, mailbox reviewers, claims and assignment on drafts; regenerate and reassign events."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def keep_existing_access(apps: object, schema_editor: object) -> None:
    """Everyone saw every mailbox before roles existed; existing staff keep that."""
    user_model = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    users = list(user_model.objects.filter(is_active=True))
    for mailbox in apps.get_model("drafts", "Mailbox").objects.all():
        mailbox.reviewers.add(*users)


class Migration(migrations.Migration):
    dependencies = [
        ("drafts", "0008_sampling_rules"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="draft",
            name="assigned_to",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="assigned_drafts",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="draft",
            name="claimed_by",
            field=models.ForeignKey(
                blank=True,
                help_text="Who has the draft open for editing, until claimed_until.",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="claimed_drafts",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="draft",
            name="claimed_until",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="mailbox",
            name="reviewers",
            field=models.ManyToManyField(
                blank=True,
                help_text="Reviewers who see and answer this mailbox's mail (supervisors see all).",
                related_name="review_mailboxes",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AlterField(
            model_name="reviewevent",
            name="action",
            field=models.CharField(
                choices=[
                    ("edit", "Edited"),
                    ("approve", "Approved"),
                    ("reject", "Rejected"),
                    ("retry", "Retried generation"),
                    ("retry_send", "Retried sending"),
                    ("sent", "Sent"),
                    ("send_failed", "Sending failed"),
                    ("regenerate", "Asked the model again"),
                    ("reassign", "Reassigned"),
                ],
                max_length=20,
            ),
        ),
        migrations.CreateModel(
            name="StaffProfile",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "role",
                    models.CharField(
                        choices=[
                            ("reviewer", "Reviewer: drafts of the mailboxes assigned to them"),
                            ("supervisor", "Supervisor: all mailboxes, and the stats"),
                            ("admin", "Admin: also templates, mailboxes and users"),
                        ],
                        default="reviewer",
                        max_length=20,
                    ),
                ),
                (
                    "language",
                    models.CharField(
                        choices=[("en", "English"), ("zh-hans", "简体中文")],
                        default="en",
                        max_length=10,
                    ),
                ),
                (
                    "user",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="profile",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
        ),
        migrations.RunPython(keep_existing_access, migrations.RunPython.noop),
    ]

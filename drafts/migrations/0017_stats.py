"""Stats: each approved draft's edit distance, stored; an index for the decision-time range."""

from __future__ import annotations

import difflib

from django.db import migrations, models

# The stats page reads only these columns of the drafts decided in a date range: an index
# that starts with decided_at and holds them all lets it skip the wide rows (texts, JSON).
# Raw SQL (the same on SQLite and PostgreSQL) rather than Meta.indexes, which belongs to the
# queue's indexes in drafts/models.py; move it there if that file is reorganised.
STATS_INDEX = (
    "CREATE INDEX IF NOT EXISTS draft_decisions ON drafts_draft (decided_at, status, "
    "decided_by_id, intent, template_id, mailbox_id, reject_reason, edit_distance, ready_at)"
)
APPROVED = ["approved", "sending", "sent", "send_failed", "send_uncertain"]


def _normalized(text: str) -> str:
    return " ".join(text.split())


def backfill_edit_distance(apps, schema_editor) -> None:
    """The same measure as drafts.models.edit_distance, frozen here as migrations must be."""
    Draft = apps.get_model("drafts", "Draft")
    approved = Draft.objects.filter(status__in=APPROVED, edit_distance__isnull=True)
    batch = []
    for draft in approved.only("generated_text", "reply_text").iterator(chunk_size=2000):
        matcher = difflib.SequenceMatcher(
            None, _normalized(draft.generated_text), _normalized(draft.reply_text), autojunk=False
        )
        draft.edit_distance = 1 - matcher.ratio()
        batch.append(draft)
        if len(batch) == 2000:
            Draft.objects.bulk_update(batch, ["edit_distance"])
            batch = []
    Draft.objects.bulk_update(batch, ["edit_distance"])


class Migration(migrations.Migration):
    dependencies = [
        ("drafts", "0016_mailbox_contact_line"),
    ]

    operations = [
        migrations.AddField(
            model_name="draft",
            name="edit_distance",
            field=models.FloatField(
                blank=True,
                editable=False,
                help_text="How much the approved reply differs from the generated draft, 0 to 1 "
                "(whitespace ignored); set on approval.",
                null=True,
            ),
        ),
        migrations.RunPython(backfill_edit_distance, migrations.RunPython.noop),
        migrations.RunSQL(STATS_INDEX, "DROP INDEX IF EXISTS draft_decisions"),
    ]

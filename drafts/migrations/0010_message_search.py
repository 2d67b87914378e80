"""Full-text search over messages: search_text, indexed by FTS5 (SQLite) or GIN (PostgreSQL).

See drafts/search.py for why the words are cut in Python, and `search.ensure_index` for the
index itself, which also runs after every migrate.
"""

from django.db import migrations, models

from drafts import search


def index_existing(apps: object, schema_editor: object) -> None:
    """Fill search_text for the messages already stored, a thousand at a time, then index it."""
    message_model = apps.get_model("drafts", "Message")
    fields = ("subject", "from_name", "from_address", "text")
    pending = message_model.objects.only(*fields).order_by("id")
    last = 0
    while batch := list(pending.filter(id__gt=last)[:1000]):
        for message in batch:
            message.search_text = search.document(*(getattr(message, f) for f in fields))
        message_model.objects.bulk_update(batch, ["search_text"])
        last = batch[-1].id
    search.ensure_index(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("drafts", "0009_roles_claims_and_review_actions")]

    operations = [
        migrations.AddField(
            model_name="message",
            name="search_text",
            field=models.TextField(
                blank=True,
                editable=False,
                help_text="Subject, sender and body as the search index reads them.",
            ),
        ),
        migrations.RunPython(index_existing, migrations.RunPython.noop),
    ]

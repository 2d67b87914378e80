"""The default prompt template, after the seed design: analyse first, then reply.

Admins edit it in the Django admin; each save there stores a new version.
"""

from __future__ import annotations

from django.db import migrations

from inference.prompts import DEFAULT_PROMPTS


def create_default(apps: object, schema_editor: object) -> None:
    template_model = apps.get_model("drafts", "PromptTemplate")
    if not template_model.objects.exists():
        template_model.objects.create(
            name="default",
            version=1,
            is_active=True,
            system_prompt=DEFAULT_PROMPTS.system,
            analysis_prompt=DEFAULT_PROMPTS.analysis,
            reply_prompt=DEFAULT_PROMPTS.reply,
        )


class Migration(migrations.Migration):
    dependencies = [("drafts", "0001_initial")]

    operations = [migrations.RunPython(create_default, migrations.RunPython.noop)]

"""Sampling rules as data, seeded with the engine's defaults; drafts record when they started."""

import django.core.validators
from django.db import migrations, models

from inference.sampling import DEFAULT_RULES


def seed_rules(apps: object, schema_editor: object) -> None:
    rule_model = apps.get_model("drafts", "SamplingRule")
    for position, rule in enumerate(DEFAULT_RULES, start=1):
        rule_model.objects.create(
            name=rule.name,
            position=position * 10,
            intents=", ".join(rule.intents),
            keywords="\n".join(rule.keywords),
            temperature=rule.temperature,
            top_p=rule.top_p,
        )


class Migration(migrations.Migration):
    dependencies = [
        ("drafts", "0007_template_help_from_engine"),
    ]

    operations = [
        migrations.CreateModel(
            name="SamplingRule",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=100)),
                (
                    "position",
                    models.PositiveIntegerField(
                        default=0,
                        help_text="Rules are tried from the lowest position; the first match wins.",
                    ),
                ),
                (
                    "intents",
                    models.CharField(
                        blank=True,
                        help_text="Intent keys separated by commas (inquiry, complaint, partnership, technical_support, demo_booking, other). Empty matches every intent.",
                        max_length=200,
                    ),
                ),
                (
                    "keywords",
                    models.TextField(
                        blank=True,
                        help_text="Words or phrases, one per line or separated by commas; the rule applies when the subject or body contains any of them. Empty matches every email.",
                    ),
                ),
                (
                    "temperature",
                    models.FloatField(
                        validators=[
                            django.core.validators.MinValueValidator(0),
                            django.core.validators.MaxValueValidator(2),
                        ]
                    ),
                ),
                (
                    "top_p",
                    models.FloatField(
                        default=0.9,
                        validators=[
                            django.core.validators.MinValueValidator(0.05),
                            django.core.validators.MaxValueValidator(1),
                        ],
                    ),
                ),
                ("enabled", models.BooleanField(default=True)),
            ],
            options={
                "ordering": ["position", "id"],
            },
        ),
        migrations.AddField(
            model_name="draft",
            name="generating_since",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(seed_rules, migrations.RunPython.noop),
    ]

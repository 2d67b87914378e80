"""Signed-in sessions, with a record for each session that signs someone in now: "Sign
out everywhere" must reach the sessions begun before the records were kept."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


def record_open_sessions(apps, schema_editor) -> None:
    if settings.SESSION_ENGINE not in DATABASE_ENGINES:
        return  # sessions elsewhere are recorded by their next request
    from django.contrib.sessions.backends.db import SessionStore
    from django.utils import timezone

    Session = apps.get_model("sessions", "Session")
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    SignedInSession = apps.get_model("drafts", "SignedInSession")
    now, store, records = timezone.now(), SessionStore(), []
    users = {str(pk) for pk in User.objects.values_list("pk", flat=True)}
    for session in Session.objects.filter(expire_date__gt=now).iterator(chunk_size=2000):
        user_id = str(store.decode(session.session_data).get("_auth_user_id", ""))
        if user_id in users:
            records.append(
                SignedInSession(
                    user_id=user_id,
                    session_key=session.session_key,
                    signed_in_at=now,
                    last_seen_at=now,
                )
            )
    SignedInSession.objects.bulk_create(records, batch_size=1000, ignore_conflicts=True)


DATABASE_ENGINES = (
    "django.contrib.sessions.backends.db",
    "django.contrib.sessions.backends.cached_db",
)


class Migration(migrations.Migration):
    dependencies = [
        ("drafts", "0037_drafting_order"),
        ("sessions", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="SignedInSession",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("session_key", models.CharField(max_length=40, unique=True)),
                ("ip_address", models.GenericIPAddressField(blank=True, null=True)),
                ("user_agent", models.CharField(blank=True, max_length=300)),
                ("signed_in_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("last_seen_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="signed_in_sessions",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["-last_seen_at", "-id"],
            },
        ),
        migrations.RunPython(record_open_sessions, migrations.RunPython.noop),
    ]

"""The drafts app: ingestion, drafting, review and sending."""

from __future__ import annotations

from pathlib import Path

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import Warning, register
from django.core.management import call_command
from django.db import connections
from django.db.models.signals import post_migrate


class DraftsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "drafts"
    verbose_name = "ReplyHub"

    def ready(self) -> None:
        from replyhub.checks import (
            check_proxy_trusted,
            check_secret_key_from_environment,
            check_two_factor_required,
        )

        register(check_model_configured)
        register(check_secret_key_from_environment, deploy=True)
        register(check_two_factor_required, deploy=True)
        register(check_proxy_trusted, deploy=True)
        post_migrate.connect(ensure_search_index, sender=self)
        post_migrate.connect(ensure_cache_table, sender=self)
        post_migrate.connect(grant_admin_access, sender=self)
        post_migrate.connect(schedule_minute_sweeps, sender=self)
        post_migrate.connect(schedule_nightly, sender=self)


def ensure_search_index(using: str = "default", **kwargs: object) -> None:
    """Recreate the search index if a migration dropped it (see drafts.search.ensure_index)."""
    from drafts import search

    search.ensure_index(connections[using])


def ensure_cache_table(using: str = "default", **kwargs: object) -> None:
    """Create the database cache's table (login counters, API rate limits) when the cache
    is in the database, as it is without REDIS_URL; nothing otherwise."""
    call_command("createcachetable", database=using, verbosity=0)


def check_model_configured(app_configs: object = None, **kwargs: object) -> list[Warning]:
    """Warn when the configured model cannot be found, before a draft fails on it."""
    from inference.registry import BACKENDS

    model = settings.REPLYHUB_MODEL
    if settings.REPLYHUB_ENGINE not in BACKENDS:
        return [
            Warning(
                f"REPLYHUB_ENGINE {settings.REPLYHUB_ENGINE!r} is not an engine; drafts will fail.",
                hint=f"Choose one of: {', '.join(sorted(BACKENDS))}.",
                id="replyhub.W002",
            )
        ]
    if settings.REPLYHUB_ENGINE in ("transformers", "chatglm") and not Path(model).exists():
        return [
            Warning(
                f"REPLYHUB_MODEL {model!r} does not exist; drafts will fail until it does.",
                hint="Run `make install` (it installs the bundled model) or set REPLYHUB_MODEL.",
                id="replyhub.W001",
            )
        ]
    return []


def grant_admin_access(using: str = "default", **kwargs: object) -> None:
    """Staff given the admin role before roles opened the Django admin get in now."""
    from drafts.models import StaffProfile

    profiles = StaffProfile.objects.using(using).filter(role=StaffProfile.ADMIN)
    for profile in profiles.select_related("user"):
        profile.sync_admin_access()


# The tasks a worker runs every minute: (function, on the I/O queue?, the schedule's name in
# the admin). The I/O workers' queue (settings.REPLYHUB_IO_QUEUE) never waits for the model;
# the heartbeat runs on both queues, so /readyz hears from both kinds of worker.
MINUTE_SWEEPS = [
    ("drafts.sending.sweep_outbox", True, "Outbox: retries and stuck sends"),
    ("drafts.health.record_heartbeat", False, "Health: worker heartbeat and model"),
    ("drafts.health.record_heartbeat", True, "Health: I/O worker heartbeat"),
    ("drafts.api.callbacks.sweep_callbacks", True, "API callbacks: retries"),
    # Chat digests of new drafts, queue thresholds, notifications due for another try.
    ("drafts.notify.sweep_notifications", True,
     "Chat notifications: digests, queue thresholds, retries"),
]  # fmt: skip


def schedule_minute_sweeps(using: str = "default", **kwargs: object) -> None:
    """Every minute a worker runs each of MINUTE_SWEEPS (created or updated after migrate),
    on its queue; a schedule left on a queue no longer used (REPLYHUB_IO_WORKERS changed)
    is deleted."""
    from django_q.models import Schedule

    wanted = {}
    for func, on_io, name in MINUTE_SWEEPS:
        queue = settings.REPLYHUB_IO_QUEUE if on_io else None
        wanted.setdefault((func, queue), name)  # without an I/O queue, one heartbeat
    for (func, queue), name in wanted.items():
        Schedule.objects.using(using).update_or_create(
            func=func,
            cluster=queue,
            defaults={
                "name": name,
                "schedule_type": Schedule.MINUTES,
                "minutes": 1,
                "repeats": -1,
            },
        )
    stale = Schedule.objects.using(using).filter(func__in={func for func, _ in wanted})
    for schedule in stale:
        if (schedule.func, schedule.cluster) not in wanted:
            schedule.delete()


# The tasks a worker runs every night: (function, local time, on the I/O queue?, name).
NIGHTLY = [
    # Sums up the day that ended, so that no stats page waits for it.
    ("drafts.daily.summarize_recent", (0, 10), False, "Stats: sum up the days that ended"),
    # The retention period (drafts/retention.py; with REPLYHUB_RETENTION_DAYS=0, nothing).
    ("drafts.retention.apply_retention", (3, 30), True,
     "Retention: remove the content of emails handled long ago"),
    ("drafts.account_activity.forget_old_events", (3, 45), True,
     "Account activity: forget events older than REPLYHUB_ACCOUNT_ACTIVITY_DAYS"),
]  # fmt: skip


def schedule_nightly(using: str = "default", **kwargs: object) -> None:
    """Every night a worker runs each of NIGHTLY at its time (created or updated after
    migrate), on its queue."""
    from datetime import datetime, time, timedelta

    from django.utils import timezone
    from django_q.models import Schedule

    tomorrow = timezone.localdate() + timedelta(days=1)
    for func, (hour, minute), on_io, name in NIGHTLY:
        Schedule.objects.using(using).update_or_create(
            func=func,
            defaults={
                "name": name,
                "schedule_type": Schedule.DAILY,
                "repeats": -1,
                "cluster": settings.REPLYHUB_IO_QUEUE if on_io else None,
                "next_run": timezone.make_aware(datetime.combine(tomorrow, time(hour, minute))),
            },
        )

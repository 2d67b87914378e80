"""manage.py reseal_secrets: seal every sealed secret anew with the current SECRET_KEY.

After SECRET_KEY changes (the old key kept in SECRET_KEY_FALLBACKS), run it once: the
authenticator apps' secrets, the chat channels' URLs and secrets and the API tokens'
signing secrets are then all sealed with the new key, and the old one can leave
SECRET_KEY_FALLBACKS. A secret that no configured key opens is left as it is and named."""

from __future__ import annotations

from collections import Counter

from django.apps import apps
from django.core.management.base import BaseCommand

from drafts import sealing
from drafts.two_factor import TwoFactor


class Command(BaseCommand):
    help = (
        "Seal the stored secrets anew with the current SECRET_KEY (after a key change, with "
        "the old key in SECRET_KEY_FALLBACKS), and name those no configured key opens."
    )

    def handle(self, *args: object, **options: object) -> None:
        counts: Counter[str] = Counter()
        unreadable: list[str] = []
        for model in apps.get_app_config("drafts").get_models():
            fields = sealing.sealed_fields(model)
            if not fields:
                continue
            for row in model.objects.only("pk", *fields):
                values = {name: getattr(row, name) for name in fields}
                lost = [name for name, value in values.items() if sealing.lost(value)]
                if lost:  # written back unchanged: it opens again if the old key returns
                    unreadable.append(
                        f"{model._meta.verbose_name} {row.pk} “{row}” ({', '.join(lost)})"
                    )
                model.objects.filter(pk=row.pk).update(**values)
                if len(lost) < len(fields):
                    counts[str(model._meta.verbose_name_plural)] += 1
        for two_factor in TwoFactor.objects.select_related("user"):
            try:
                two_factor.secret  # noqa: B018 # reading seals anew what a fallback key opened
            except sealing.Unreadable:
                unreadable.append(f"two-step verification of {two_factor.user}")
                continue
            counts[str(TwoFactor._meta.verbose_name_plural)] += 1
        done = ", ".join(f"{label} {count}" for label, count in counts.items()) or "nothing"
        self.stdout.write(self.style.SUCCESS(f"Sealed anew with the current SECRET_KEY: {done}."))
        if unreadable:
            self.stdout.write(
                self.style.WARNING(
                    "No configured key opens these (sealed with a SECRET_KEY that is gone; put "
                    "it back in SECRET_KEY_FALLBACKS and run again, or enter them anew): "
                    + "; ".join(unreadable)
                )
            )

"""Compile the translation catalogues (.po) into the .mo files Django reads.

Django's own compilemessages needs GNU gettext's msgfmt; this uses the polib package
instead, so a plain `pip install -r requirements.txt` is enough. Fuzzy and untranslated
entries are left out of the .mo, as msgfmt does.
"""

from __future__ import annotations

from pathlib import Path

import polib
from django.conf import settings
from django.core.management.base import BaseCommand


def compile_catalogues(locale_dirs: list[Path], force: bool = False) -> list[Path]:
    """Write a .mo beside every .po under ``locale_dirs`` that is newer; return those written.

    Idempotent: an up-to-date .mo is left alone unless ``force``.
    """
    written = []
    for locale_dir in locale_dirs:
        for po_path in sorted(Path(locale_dir).glob("*/LC_MESSAGES/*.po")):
            mo_path = po_path.with_suffix(".mo")
            if (
                not force
                and mo_path.exists()
                and mo_path.stat().st_mtime >= po_path.stat().st_mtime
            ):
                continue
            # Written next to the target and renamed, so a running server never reads half.
            partial = mo_path.with_suffix(".mo.partial")
            polib.pofile(str(po_path)).save_as_mofile(str(partial))
            partial.replace(mo_path)
            written.append(mo_path)
    return written


class Command(BaseCommand):
    help = "Compile locale/*/LC_MESSAGES/*.po into .mo files (no GNU gettext needed)."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--force", action="store_true", help="Rewrite .mo files that look up to date."
        )

    def handle(self, *args: object, force: bool = False, **options: object) -> None:
        written = compile_catalogues([Path(p) for p in settings.LOCALE_PATHS], force=force)
        for path in written:
            self.stdout.write(f"Compiled {path}")
        if not written:
            self.stdout.write("Translations are up to date.")

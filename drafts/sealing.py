"""Secrets the server must read back, sealed at rest: the authenticator apps' TOTP secrets
(drafts/two_factor.py), which the server needs to compute the same codes as the phone; the
chat channels' robot URLs (their access tokens) and signing secrets (drafts/notify.py); the
API tokens' callback signing secrets (drafts/api/tokens.py), through SealedCharField and
SealedURLField.

They are encrypted (Fernet: AES-128-CBC with an HMAC-SHA256 tag) with a key derived from
SECRET_KEY by HKDF, so a copy of the database alone (a backup, a dump, a replica) does not
hold them; the key lives in the environment (/etc/replyhub/env), not in the database.

Rotating SECRET_KEY: put the old key in SECRET_KEY_FALLBACKS; sealed secrets stay readable,
authenticator secrets are sealed anew with the current key when next used, and
``manage.py reseal_secrets`` seals everything anew at once, after which the old key can go.
A secret sealed with a key that is gone cannot be read (Unreadable): its owner signs in
with a recovery code, or an admin resets their two-step verification; a sealed column
reads as Lost, which says so, and the secret is entered again.
"""

from __future__ import annotations

import base64
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import models

PURPOSE = b"replyhub sealed secrets v1"


class Unreadable(Exception):
    """A sealed secret that neither SECRET_KEY nor a fallback opens."""


def _fernet(secret_key: str) -> Fernet:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=PURPOSE)
    return Fernet(base64.urlsafe_b64encode(hkdf.derive(secret_key.encode())))


def seal(text: str) -> str:
    """``text`` sealed with the current SECRET_KEY."""
    return _fernet(settings.SECRET_KEY).encrypt(text.encode()).decode()


def unseal(sealed: str) -> str:
    """The text of ``sealed``; Unreadable when no configured key opens it."""
    return open_sealed(sealed)[0]


def open_sealed(sealed: str) -> tuple[str, bool]:
    """The text of ``sealed``, and whether the current SECRET_KEY sealed it (False: a key
    of SECRET_KEY_FALLBACKS did, and it is due to be sealed anew). Unreadable when no
    configured key opens it."""
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    for position, key in enumerate(keys):
        try:
            return _fernet(key).decrypt(sealed.encode()).decode(), position == 0
        except InvalidToken:
            continue
    raise Unreadable("sealed with a key that is neither SECRET_KEY nor a fallback")


# -- sealed model fields -----------------------------------------------------------------------


class Lost(str):
    """What a sealed column reads as when no configured key opens it: an empty string that
    keeps the sealed text, so saving the row writes it back unchanged (it opens again if
    the old key returns to SECRET_KEY_FALLBACKS)."""

    sealed: str

    def __new__(cls, sealed: str) -> Lost:
        text = super().__new__(cls, "")
        text.sealed = sealed
        return text


def lost(value: object) -> bool:
    """Whether ``value``, read from a sealed column, could not be opened (see Lost)."""
    return isinstance(value, Lost)


class SealedMixin:
    """A text column that the database holds sealed and Python sees as plain text.

    An empty value is stored empty (it says only that there is none). Sealing is
    randomised, so the column cannot be looked up by value; ``max_length`` holds for the
    plain text, and the column is TEXT (the sealed text is longer)."""

    def get_internal_type(self) -> str:
        return "TextField"

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        if not value:
            return value
        try:
            return unseal(value)
        except Unreadable:
            return Lost(value)

    def get_prep_value(self, value: Any) -> Any:
        if isinstance(value, Lost):
            return value.sealed
        value = super().get_prep_value(value)  # type: ignore[misc]
        return seal(value) if value else value


class SealedCharField(SealedMixin, models.CharField):
    """A CharField sealed at rest."""


class SealedURLField(SealedMixin, models.URLField):
    """A URLField sealed at rest (a chat robot's URL carries its access token)."""


def sealed_fields(model: type[models.Model]) -> list[str]:
    """The names of ``model``'s sealed fields."""
    return [f.name for f in model._meta.concrete_fields if isinstance(f, SealedMixin)]

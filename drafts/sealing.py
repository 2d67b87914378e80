"""Secrets the server must read back, sealed at rest: the authenticator apps' TOTP secrets
(drafts/two_factor.py), which the server needs to compute the same codes as the phone.

They are encrypted (Fernet: AES-128-CBC with an HMAC-SHA256 tag) with a key derived from
SECRET_KEY by HKDF, so a copy of the database alone (a backup, a dump, a replica) does not
hold them; the key lives in the environment (/etc/replyhub/env), not in the database.

Rotating SECRET_KEY: put the old key in SECRET_KEY_FALLBACKS; sealed secrets stay readable
and are sealed anew with the current key when next used. A secret sealed with a key that
is gone cannot be read (Unreadable): its owner signs in with a recovery code, or an admin
resets their two-step verification.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

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

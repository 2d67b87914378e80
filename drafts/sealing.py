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

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

PURPOSE = b"replyhub sealed secrets v1"


class Unreadable(Exception):
    """A sealed secret that neither SECRET_KEY nor a fallback opens."""


def _fernet(secret_key: str) -> Fernet:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=PURPOSE)
    return Fernet(base64.urlsafe_b64encode(hkdf.derive(secret_key.encode())))


def _keys() -> MultiFernet:
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet([_fernet(key) for key in keys])


def seal(text: str) -> str:
    """``text`` sealed with the current SECRET_KEY."""
    return _keys().encrypt(text.encode()).decode()


def unseal(sealed: str) -> str:
    """The text of ``sealed``; Unreadable when no configured key opens it."""
    try:
        return _keys().decrypt(sealed.encode()).decode()
    except InvalidToken:
        raise Unreadable("sealed with a key that is neither SECRET_KEY nor a fallback") from None


def sealed_with_current_key(sealed: str) -> bool:
    """Whether ``sealed`` opens with the current SECRET_KEY (not only with a fallback)."""
    try:
        _fernet(settings.SECRET_KEY).decrypt(sealed.encode())
    except InvalidToken:
        return False
    return True

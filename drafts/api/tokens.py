"""Per-user API tokens: only a hash of the secret is stored; a token acts as its user.

A token reads ``rh_<prefix>_<secret>``. The prefix (8 characters) is shown to people so they
can tell their tokens apart; the whole token is hashed with SHA-256 and only the hash is
kept, so the database alone never lets anyone use it. The secret is shown once, when the
token is made. Each token also has a signing secret for its callbacks (see
drafts/api/callbacks.py), which its owner can look up at any time: it proves that a callback
came from ReplyHub, and lets nobody into anything.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy

from drafts import sealing

TOKEN_PREFIX = "rh_"
# last_used_at is written at most this often per token: not one UPDATE per request.
LAST_USED_PRECISION = timedelta(minutes=1)


def hash_token(token: str) -> str:
    """The SHA-256 hex digest under which a token is stored and looked up."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_signing_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


class ApiToken(models.Model):
    """A secret that lets a program use the API with its user's permissions."""

    READ, WRITE = "read", "write"
    ACCESS = [
        (WRITE, gettext_lazy("Read and write")),
        (READ, gettext_lazy("Read only")),
    ]

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. “CRM sync”.")
    access = models.CharField(
        max_length=5,
        choices=ACCESS,
        default=WRITE,
        help_text="Read-only tokens may list and read, but not submit, approve or reject.",
    )
    prefix = models.CharField(max_length=8, unique=True, editable=False)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    signing_secret = sealing.SealedCharField(
        max_length=64,
        default=new_signing_secret,
        editable=False,
        help_text="Callbacks made for this token are signed with it (HMAC-SHA256).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({TOKEN_PREFIX}{self.prefix}…)"

    @property
    def signing_secret_readable(self) -> bool:
        """False when the signing secret was sealed with a SECRET_KEY that is gone."""
        return not sealing.lost(self.signing_secret)

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def can_write(self) -> bool:
        return self.access == self.WRITE

    @classmethod
    def issue(cls, user: object, name: str, access: str = WRITE) -> tuple[ApiToken, str]:
        """Make a token for ``user``; returns it with its secret, which is not kept."""
        token = cls(user=user, name=name.strip()[:100], access=access)
        secret = token.set_secret()
        token.save()
        return token, secret

    def set_secret(self) -> str:
        """Give an unsaved token its prefix and hash; returns the whole token, once."""
        self.prefix = secrets.token_hex(4)
        secret = f"{TOKEN_PREFIX}{self.prefix}_{secrets.token_urlsafe(32)}"
        self.token_hash = hash_token(secret)
        return secret

    @classmethod
    def authenticate(cls, secret: str) -> ApiToken | None:
        """The live token this secret belongs to, with its user; None if there is none.

        Revoked tokens and tokens of deactivated users count as unknown.
        """
        if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
            return None
        token = (
            cls.objects.select_related("user")
            .filter(token_hash=hash_token(secret), revoked_at__isnull=True, user__is_active=True)
            .first()
        )
        if token is not None:
            token.touch()
        return token

    def touch(self) -> None:
        """Record that the token was used now (at most once per LAST_USED_PRECISION)."""
        now = timezone.now()
        stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_PRECISION)
        if ApiToken.objects.filter(stale, pk=self.pk).update(last_used_at=now):
            self.last_used_at = now

    def revoke(self) -> bool:
        """Stop the token working, for good; False if it was revoked already."""
        now = timezone.now()
        revoked = ApiToken.objects.filter(pk=self.pk, revoked_at__isnull=True).update(
            revoked_at=now
        )
        if revoked:
            self.revoked_at = now
        return bool(revoked)

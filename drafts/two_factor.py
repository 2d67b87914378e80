"""Two-step verification: a code from an authenticator app (TOTP) after the password.

The codes are RFC 6238 time-based one-time passwords (HMAC-SHA1, 6 digits, a new one every
30 s), which Google Authenticator, Microsoft Authenticator, 阿里云/腾讯身份宝 and the like
all compute from a secret they read from a QR code. The server computes the same codes, so
it must read the secret back: it is kept sealed with a key derived from SECRET_KEY
(drafts/sealing.py), so that the database alone does not give it away. Recovery codes, for
a lost phone, are kept only as SHA-256 hashes, since they are random enough that a hash
cannot be guessed back.

A code is accepted for the 30-second step it belongs to and the steps just before and
after (phones' clocks drift), and only once: the last step used is stored, and moved
forward by a conditional UPDATE, so two requests racing with the same code cannot both
pass. Who must turn it on is REPLYHUB_REQUIRE_2FA (``required_for``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from urllib.parse import quote, urlencode

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

from drafts import sealing

# RFC 6238's defaults, the only ones every authenticator app supports.
DIGITS = 6
STEP_SECONDS = 30
# Steps either side of now that are accepted, for a phone whose clock is a little off.
DRIFT_STEPS = 1
RECOVERY_CODES = 10
# 12 characters from 31 (no 0/o, 1/l/i to misread): about 59 bits each.
RECOVERY_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
RECOVERY_LENGTH = 12
# REPLYHUB_REQUIRE_2FA's values (replyhub/settings.py refuses any other).
POLICIES = ("none", "admins", "staff", "all")


def new_secret() -> str:
    """A random 160-bit secret, base32 as the apps expect it (32 characters, no padding)."""
    return base64.b32encode(secrets.token_bytes(20)).decode()


def new_sealed_secret() -> str:
    """A new secret, sealed for storing (drafts/sealing.py)."""
    return sealing.seal(new_secret())


def totp(secret: str, step: int, digits: int = DIGITS) -> str:
    """The code for one 30-second step (RFC 6238 over RFC 4226's HOTP, HMAC-SHA1)."""
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    digest = hmac.new(key, step.to_bytes(8, "big"), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    number = int.from_bytes(digest[offset : offset + 4], "big") & 0x7FFF_FFFF
    return str(number % 10**digits).zfill(digits)


def current_step(now: float | None = None) -> int:
    """The 30-second step a Unix time falls in (now, by default)."""
    return int((time.time() if now is None else now) // STEP_SECONDS)


def issuer() -> str:
    """The name the authenticator app lists the account under, e.g. "ReplyHub (Acme Cloud)".

    A colon would end the label early in the otpauth:// URI, so none is kept.
    """
    return f"ReplyHub ({settings.REPLYHUB_COMPANY_NAME})".replace(":", " ")


def provisioning_uri(secret: str, account: str) -> str:
    """The otpauth:// URI that the QR code carries (Google's Key Uri Format)."""
    name = issuer()
    label = quote(f"{name}:{account}", safe="")
    parameters = {"secret": secret, "issuer": name, "algorithm": "SHA1"}
    parameters |= {"digits": DIGITS, "period": STEP_SECONDS}
    query = urlencode(parameters, quote_via=quote)
    return f"otpauth://totp/{label}?{query}"


def qr_svg(text: str) -> str:
    """``text`` as a QR code in an inline <svg> element (no image library needed)."""
    import qrcode
    from qrcode.image.svg import SvgPathImage

    image = qrcode.make(text, image_factory=SvgPathImage, box_size=8, border=2)
    return image.to_string(encoding="unicode")


def normalized(code: str) -> str:
    """What the user typed, without the spaces and dashes they may copy with it."""
    return "".join(code.split()).replace("-", "").lower()


def looks_like_totp(code: str) -> bool:
    """Six digits: a code from the app (recovery codes are longer)."""
    return len(code) == DIGITS and code.isascii() and code.isdigit()


def hash_recovery_code(code: str) -> str:
    return hashlib.sha256(normalized(code).encode()).hexdigest()


def new_recovery_code() -> str:
    """A random recovery code, written in groups of four: "k7mq-2xdp-9hfa"."""
    code = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_LENGTH))
    return "-".join(code[i : i + 4] for i in range(0, RECOVERY_LENGTH, 4))


def required_for(user: object) -> bool:
    """Whether REPLYHUB_REQUIRE_2FA makes two-step verification compulsory for ``user``.

    "admins": superusers and the admin role; "staff": supervisors too; "all": everyone.
    """
    from drafts.models import StaffProfile

    policy = settings.REPLYHUB_REQUIRE_2FA
    if policy == "none":
        return False
    if policy == "all":
        return True
    role = StaffProfile.role_of(user)  # superusers are admins
    if policy == "admins":
        return role == StaffProfile.ADMIN
    return role in (StaffProfile.SUPERVISOR, StaffProfile.ADMIN)


def enabled_for(user: object) -> bool:
    """Whether ``user`` has turned two-step verification on (set up and confirmed)."""
    return TwoFactor.objects.filter(user=user, confirmed_at__isnull=False).exists()


def must_set_up(user: object) -> bool:
    """A user whom REPLYHUB_REQUIRE_2FA obliges to set it up, who has not yet."""
    return required_for(user) and not enabled_for(user)


def record(actor: object, user: object, message: str) -> None:
    """Note a change to ``user``'s two-step verification in the user's history in the admin
    (Django's LogEntry): who did it, when, and what."""
    from django.contrib.admin.models import CHANGE, LogEntry

    LogEntry.objects.log_actions(
        user_id=actor.pk,
        queryset=[user],
        action_flag=CHANGE,
        change_message=message,
        single_object=True,
    )


def turn_off(user: object, by: object) -> bool:
    """Remove ``user``'s authenticator app and recovery codes: their own choice, or an
    admin's reset for someone who lost their phone. False if there was nothing to remove.

    Only a confirmed setup is recorded; the user sets it up anew (with a new secret).
    """
    was_on = enabled_for(user)
    deleted, _ = TwoFactor.objects.filter(user=user).delete()
    if was_on:
        if by == user:
            record(by, user, "Turned two-step verification off.")
        else:
            record(by, user, f"Reset two-step verification of {user.get_username()}.")
    return was_on or bool(deleted)


class TwoFactor(models.Model):
    """A user's authenticator app: its secret, and whether (and since when) it is on.

    A row with no ``confirmed_at`` is a setup in progress: the QR code has been shown, but
    the user has not yet typed a code to prove their app has the secret, and logging in
    does not ask for one.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="two_factor"
    )
    sealed_secret = models.TextField(default=new_sealed_secret, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    confirmed_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The 30-second step of the last code accepted; codes of that step or earlier are not.
    last_used_step = models.BigIntegerField(default=0, editable=False)

    class Meta:
        verbose_name = "two-step verification"
        verbose_name_plural = "two-step verifications"

    def __str__(self) -> str:
        state = "on" if self.enabled else "being set up"
        return f"Two-step verification of {self.user} ({state})"

    @property
    def enabled(self) -> bool:
        return self.confirmed_at is not None

    @classmethod
    def setup_for(cls, user: object) -> TwoFactor:
        """The user's setup in progress (or their active one), with a fresh secret if new,
        or if the one shown before can no longer be read (SECRET_KEY changed)."""
        two_factor, _ = cls.objects.get_or_create(user=user)
        if not two_factor.enabled and not two_factor.readable:
            two_factor.sealed_secret = new_sealed_secret()
            two_factor.save(update_fields=["sealed_secret"])
        return two_factor

    @property
    def secret(self) -> str:
        """The authenticator app's secret; sealing.Unreadable when SECRET_KEY changed with
        no fallback for the key it was sealed with."""
        secret, current = sealing.open_sealed(self.sealed_secret)
        if not current:  # opened with a SECRET_KEY_FALLBACKS key: sealed anew
            self.sealed_secret = sealing.seal(secret)
            TwoFactor.objects.filter(pk=self.pk).update(sealed_secret=self.sealed_secret)
        return secret

    @property
    def readable(self) -> bool:
        """Whether this server can read the secret (see ``secret``)."""
        try:
            sealing.unseal(self.sealed_secret)
        except sealing.Unreadable:
            return False
        return True

    def provisioning_uri(self) -> str:
        return provisioning_uri(self.secret, self.user.get_username())

    def verify(self, code: str, now: float | None = None) -> bool:
        """Whether ``code`` is the app's code for now (or the step before or after), used
        for the first time; it then cannot be used again, nor can any earlier one.

        The step is claimed with a conditional UPDATE: of two requests with one code,
        exactly one passes.
        """
        code = normalized(code)
        if not looks_like_totp(code):
            return False
        try:
            secret = self.secret
        except sealing.Unreadable:
            return False
        step = current_step(now)
        for candidate in range(step - DRIFT_STEPS, step + DRIFT_STEPS + 1):
            if candidate <= self.last_used_step:
                continue
            if hmac.compare_digest(totp(secret, candidate), code):
                claimed = TwoFactor.objects.filter(pk=self.pk, last_used_step__lt=candidate).update(
                    last_used_step=candidate
                )
                if claimed:
                    self.last_used_step = candidate
                return bool(claimed)
        return False

    def confirm(self, code: str, now: float | None = None) -> list[str] | None:
        """Turn two-step verification on if ``code`` proves the app has the secret.

        Returns the new recovery codes (to be shown once), or None for a wrong code.
        """
        if self.enabled or not self.verify(code, now):
            return None
        with transaction.atomic():
            confirmed = TwoFactor.objects.filter(pk=self.pk, confirmed_at__isnull=True).update(
                confirmed_at=timezone.now()
            )
            if not confirmed:
                return None
            self.refresh_from_db(fields=["confirmed_at"])
            codes = self.new_recovery_codes()
        record(self.user, self.user, "Turned two-step verification on.")
        return codes

    def new_recovery_codes(self) -> list[str]:
        """Replace the recovery codes with RECOVERY_CODES new ones; returns them, once."""
        codes = [new_recovery_code() for _ in range(RECOVERY_CODES)]
        with transaction.atomic():
            self.recovery_codes.all().delete()
            RecoveryCode.objects.bulk_create(
                RecoveryCode(two_factor=self, code_hash=hash_recovery_code(c)) for c in codes
            )
        return codes

    def use_recovery_code(self, code: str) -> bool:
        """Whether ``code`` is one of the unused recovery codes; it is used up if so."""
        if not normalized(code):
            return False
        return bool(
            RecoveryCode.objects.filter(
                two_factor=self, code_hash=hash_recovery_code(code), used_at__isnull=True
            ).update(used_at=timezone.now())
        )

    def accepts(self, code: str) -> bool:
        """A code from the app, or else a recovery code (used up by this)."""
        if looks_like_totp(normalized(code)):
            return self.verify(code)
        return self.use_recovery_code(code)

    def recovery_codes_left(self) -> int:
        return self.recovery_codes.filter(used_at__isnull=True).count()


class RecoveryCode(models.Model):
    """One of the codes that stand in for the app once each; only its SHA-256 is kept."""

    two_factor = models.ForeignKey(
        TwoFactor, on_delete=models.CASCADE, related_name="recovery_codes"
    )
    code_hash = models.CharField(max_length=64)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["two_factor", "code_hash"], name="recoverycode_lookup")]

    def __str__(self) -> str:
        return f"Recovery code of {self.two_factor.user} ({'used' if self.used_at else 'unused'})"

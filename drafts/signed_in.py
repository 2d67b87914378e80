"""Where each person is signed in: their browser sessions, listed on the Account security
page, where any of them can be signed out (a laptop left at a customer's, a lost phone).

Django's sessions have no user column, so every login is recorded here (the
``user_logged_in`` signal) with its session key, address and browser. The middleware
notes when a session was last used, at most every SEEN_EVERY seconds (the time of the last
note is kept in the session itself, so most pages cost no query). Signing a session out
deletes it from the session store: its next request finds no session and goes to the
login page.

Turning two-step verification on signs out the person's other sessions (they began with
the password alone); an admin's reset of it, and the admin's "Sign out everywhere", sign
out all of them.
"""

from __future__ import annotations

import re
import time
from importlib import import_module

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, user_logged_in, user_logged_out
from django.db import IntegrityError, models, transaction
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.translation import gettext as _

from drafts.client_address import client_address, user_agent

SEEN_EVERY = 300  # seconds between two notes of a session's use
SEEN_KEY = "_signed_in_seen"  # in the session: when its use was last noted (epoch seconds)


class SignedInSession(models.Model):
    """One browser session of a signed-in person."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="signed_in_sessions"
    )
    session_key = models.CharField(max_length=40, unique=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    signed_in_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-last_seen_at", "-id"]

    def __str__(self) -> str:
        return f"{self.user} on {self.browser}"

    @property
    def browser(self) -> str:
        """ "Chrome on Windows", in the reader's language, from the browser's User-Agent."""
        return describe_browser(self.user_agent)


def _store(session_key: str | None = None):
    return import_module(settings.SESSION_ENGINE).SessionStore(session_key)


def _client(request: HttpRequest) -> dict[str, object]:
    return {
        "ip_address": client_address(request),
        "user_agent": user_agent(request),
        "last_seen_at": timezone.now(),
    }


@receiver(user_logged_in, dispatch_uid="drafts.signed_in.record")
def record(sender: object, request: HttpRequest | None, user: object, **kwargs: object) -> None:
    """Note the session a login has just begun. login() has given it a new key, or emptied
    it when it held another user's login: then it is saved here to have one."""
    session = getattr(request, "session", None)
    if session is None or user is None:
        return
    if session.session_key is None:
        session.save()
    session[SEEN_KEY] = time.time()
    SignedInSession.objects.update_or_create(
        session_key=session.session_key,
        defaults={"user": user, "signed_in_at": timezone.now(), **_client(request)},
    )


@receiver(user_logged_out, dispatch_uid="drafts.signed_in.forget")
def forget(sender: object, request: HttpRequest | None, user: object, **kwargs: object) -> None:
    """A logout ends its session: the record goes with it."""
    key = getattr(getattr(request, "session", None), "session_key", None)
    if key:
        SignedInSession.objects.filter(session_key=key).delete()


def note_use(request: HttpRequest) -> None:
    """Note that the signed-in request's session is in use (see SEEN_EVERY), recording a
    session that began before these records did."""
    session = request.session
    if not request.user.is_authenticated or session.session_key is None:
        return
    now = time.time()
    if now - session.get(SEEN_KEY, 0) < SEEN_EVERY:
        return
    session[SEEN_KEY] = now
    client = _client(request)
    key = session.session_key
    if SignedInSession.objects.filter(session_key=key, user=request.user).update(**client):
        return
    try:
        with transaction.atomic():
            SignedInSession.objects.filter(session_key=key).delete()  # another user's, stale
            SignedInSession.objects.create(session_key=key, user=request.user, **client)
    except IntegrityError:  # two first requests at once: the other one recorded it
        pass


def renamed(old_key: str | None, new_key: str | None) -> None:
    """The session went on under a new key (Django gives it one when the password changes)."""
    if old_key and new_key and old_key != new_key:
        SignedInSession.objects.filter(session_key=old_key).update(session_key=new_key)


def _alive(record: SignedInSession) -> bool:
    """The session still exists, has not expired, and still signs this user in (a password
    change ends the others: their stored password hash no longer matches)."""
    store = _store(record.session_key)
    data = store.load()
    if store.session_key is None or str(data.get(SESSION_KEY)) != str(record.user_id):
        return False
    stored_hash = data.get(HASH_SESSION_KEY) or ""
    return constant_time_compare(stored_hash, record.user.get_session_auth_hash())


def sessions_of(user: object) -> list[SignedInSession]:
    """The user's sessions that still sign them in, last used first. The others (expired,
    logged out, or from before a password change) are deleted with their records."""
    records = list(SignedInSession.objects.filter(user=user).select_related("user"))
    dead = [r for r in records if not _alive(r)]
    for record in dead:
        _store().delete(record.session_key)
        record.delete()
    return [r for r in records if r not in dead]


def sign_out(user: object, keep: str | None = None, only: int | None = None) -> int:
    """Sign ``user`` out of their sessions, but the one of key ``keep`` (the browser asking);
    with ``only``, just the session of that record. Returns how many were signed out."""
    records = SignedInSession.objects.filter(user=user)
    if only is not None:
        records = records.filter(pk=only)
    if keep:
        records = records.exclude(session_key=keep)
    store, ended = _store(), 0
    for record in list(records):
        store.delete(record.session_key)
        record.delete()
        ended += 1
    return ended


_BROWSERS = [  # checked in order: Edge and Opera also say "Chrome", Chrome also "Safari"
    ("Edg", "Edge"),
    ("OPR", "Opera"),
    ("Firefox", "Firefox"),
    ("Chrome", "Chrome"),
    ("Chromium", "Chromium"),
    ("Version", "Safari"),
    ("curl", "curl"),
]
_SYSTEMS = [
    ("Windows", "Windows"),
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Mac OS X", "macOS"),
    ("Android", "Android"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
]


def describe_browser(user_agent: str) -> str:
    """A browser and system a person recognises, from a User-Agent header."""
    products = {name for name in re.findall(r"([A-Za-z]+)/[\d.]+", user_agent)}
    products |= {name[8:] for name in products if name.startswith("Headless")}
    browser = next((label for token, label in _BROWSERS if token in products), "")
    system = next((label for token, label in _SYSTEMS if token in user_agent), "")
    if browser and system:
        return _("%(browser)s on %(system)s") % {"browser": browser, "system": system}
    return browser or system or _("Unknown browser")

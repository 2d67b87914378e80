"""Deployment checks of ReplyHub's own (`manage.py check --deploy`), beside Django's.

Django checks HTTPS, cookies, HSTS and the strength of SECRET_KEY; it cannot see that
the key was generated into the data folder rather than set in the environment, which
works on one machine but gives every web server of a larger deployment its own key (and
logs everyone out when the data folder is restored elsewhere). Nor does it know that
admins logging in with a password alone are what a security review asks about first,
or that a proxy in front whose address is not trusted makes every login come from it.
"""

from __future__ import annotations

import os

from django.core.checks import Warning


def check_secret_key_from_environment(app_configs: object = None, **kwargs: object) -> list:
    """Warn when SECRET_KEY does not come from the environment (deploy checks only)."""
    if os.getenv("SECRET_KEY"):
        return []
    return [
        Warning(
            "SECRET_KEY is not set in the environment; ReplyHub uses the key it generated "
            "into REPLYHUB_VAR_DIR/secret_key.",
            hint="Set SECRET_KEY in /etc/replyhub/env (deploy/env.example shows how to "
            "make one), the same on every web server and worker.",
            id="replyhub.W010",
        )
    ]


def check_two_factor_required(app_configs: object = None, **kwargs: object) -> list:
    """Warn when nobody has to use two-step verification (deploy checks only)."""
    from django.conf import settings

    if settings.REPLYHUB_REQUIRE_2FA != "none":
        return []
    return [
        Warning(
            "REPLYHUB_REQUIRE_2FA is none: admins, who can change users, templates and "
            "mailboxes, may log in with a password alone.",
            hint="Set REPLYHUB_REQUIRE_2FA=admins (or staff, or all) in /etc/replyhub/env.",
            id="replyhub.W011",
        )
    ]


def check_proxy_trusted(app_configs: object = None, **kwargs: object) -> list:
    """Warn when ReplyHub is told it is behind a proxy but trusts none (deploy checks only)."""
    from django.conf import settings

    if not getattr(settings, "SECURE_PROXY_SSL_HEADER", None) or settings.REPLYHUB_TRUSTED_PROXIES:
        return []
    return [
        Warning(
            "REPLYHUB_TRUST_X_FORWARDED_PROTO is on but REPLYHUB_TRUSTED_PROXIES is empty: "
            "every request seems to come from the proxy, so failed logins of anyone lock "
            "out everyone.",
            hint="Set REPLYHUB_TRUSTED_PROXIES to the proxy's address (127.0.0.1,::1 when "
            "nginx runs on the same machine).",
            id="replyhub.W012",
        )
    ]

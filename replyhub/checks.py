"""Deployment checks of ReplyHub's own (`manage.py check --deploy`), beside Django's.

Django checks HTTPS, cookies, HSTS and the strength of SECRET_KEY; it cannot see that
the key was generated into the data folder rather than set in the environment, which
works on one machine but gives every web server of a larger deployment its own key (and
logs everyone out when the data folder is restored elsewhere).
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

"""Gunicorn's settings for ReplyHub's web server (used by supervisord.conf and the systemd unit).

    gunicorn replyhub.wsgi -c deploy/gunicorn.conf.py

Read from the same environment as the app (/etc/replyhub/env): REPLYHUB_BIND (where to
listen; keep it on the loopback behind nginx), REPLYHUB_WEB_WORKERS (processes), and
REPLYHUB_LOG_FORMAT (json puts gunicorn's own lines, the access log among them, in the
app's JSON format), REPLYHUB_TRUSTED_PROXIES (whose X-Forwarded-Proto counts).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # replyhub.logging, before gunicorn changes directory

from replyhub.logging import gunicorn_logconfig  # noqa: E402

wsgi_app = "replyhub.wsgi:application"
chdir = str(ROOT)
bind = os.getenv("REPLYHUB_BIND", "127.0.0.1:8000")
workers = int(os.getenv("REPLYHUB_WEB_WORKERS", "3"))
# A page never takes long; a worker stuck for this long is killed and replaced.
timeout = 60
graceful_timeout = 30
# Replace each web worker after about this many requests (jitter: not all at once).
max_requests = 5000
max_requests_jitter = 500
accesslog = "-"
errorlog = "-"
# nginx in front sets X-Forwarded-For/-Proto; trust them only from the proxies the app
# trusts (REPLYHUB_TRUSTED_PROXIES, the loopback by default).
forwarded_allow_ips = os.getenv("REPLYHUB_TRUSTED_PROXIES", "127.0.0.1,::1")
if os.getenv("REPLYHUB_LOG_FORMAT", "plain").strip().lower() == "json":
    logconfig_dict = gunicorn_logconfig("json")

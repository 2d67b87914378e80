"""ReplyHub behind a reverse proxy: the client's address through the proxies it trusts
(drafts/client_address.py), for the login lock and the sessions on Account security.

The last test runs deploy/nginx.conf in a real nginx in front of a real gunicorn
(deploy/gunicorn.conf.py), with clients on two loopback addresses: one fails its logins
until its address is locked, the other still logs in and sees its own address.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import secrets
import signal
import sqlite3
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, RequestFactory
from django.urls import reverse

from drafts.client_address import client_address
from drafts.signed_in import SignedInSession
from replyhub.settings import envnetworks
from tests.conftest import free_port
from tests.dovecot import self_signed_certificate
from tests.test_deploy import DEPLOY, ROOT, _settings_variable, wait_for, with_env

NGINX = "/usr/sbin/nginx"


def address_of(remote: str, forwarded: str | None = None) -> str | None:
    headers = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    return client_address(RequestFactory().get("/", REMOTE_ADDR=remote, **headers))


def test_without_a_proxy_the_address_is_the_connections():
    assert address_of("203.0.113.7") == "203.0.113.7"


def test_a_forwarded_for_from_a_client_is_not_believed():
    assert address_of("203.0.113.7", "198.51.100.1") == "203.0.113.7"


def test_behind_the_local_proxy_the_address_is_the_one_it_appended():
    assert address_of("127.0.0.1", "203.0.113.7") == "203.0.113.7"
    assert address_of("::1", "2001:db8::5") == "2001:db8::5"
    # What the client wrote before the proxy's entry is not believed.
    assert address_of("127.0.0.1", "198.51.100.1, 203.0.113.7") == "203.0.113.7"


def test_a_chain_of_trusted_proxies_is_followed_to_the_client(settings):
    settings.REPLYHUB_TRUSTED_PROXIES = envnetworks("X", "127.0.0.1,10.0.0.0/8")
    chain = "198.51.100.1, 203.0.113.7, 10.1.2.3"
    assert address_of("127.0.0.1", chain) == "203.0.113.7"
    # Every hop trusted: the first one is the client's.
    assert address_of("127.0.0.1", "10.9.9.9, 10.1.2.3") == "10.9.9.9"


def test_the_proxies_way_of_writing_an_address_is_understood():
    assert address_of("127.0.0.1", "203.0.113.7:51234") == "203.0.113.7"
    assert address_of("127.0.0.1", "[2001:db8::5]:443") == "2001:db8::5"
    assert address_of("::ffff:127.0.0.1", "203.0.113.7") == "203.0.113.7"
    # Not an address: the proxy that passed it on is the nearest one known.
    assert address_of("127.0.0.1", "unknown") == "127.0.0.1"
    assert address_of("127.0.0.1", "") == "127.0.0.1"
    assert address_of("") is None


def test_with_no_trusted_proxy_the_header_is_ignored(settings):
    settings.REPLYHUB_TRUSTED_PROXIES = []
    assert address_of("127.0.0.1", "203.0.113.7") == "127.0.0.1"


def test_a_trusted_proxy_that_is_not_an_address_is_refused_by_name(monkeypatch):
    monkeypatch.setenv("REPLYHUB_TRUSTED_PROXIES", "127.0.0.1, nginx.local")
    with pytest.raises(ImproperlyConfigured, match=r"REPLYHUB_TRUSTED_PROXIES: 'nginx\.local'"):
        envnetworks("REPLYHUB_TRUSTED_PROXIES", "")


@pytest.mark.django_db
def test_the_login_lock_counts_the_clients_behind_the_proxy_apart(settings):
    settings.REPLYHUB_LOGIN_ATTEMPTS = 1  # five failures lock an address
    get_user_model().objects.create_user("mei", password="correct horse 9")
    intruder = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.66")
    for number in range(5):
        intruder.post(reverse("login"), {"username": f"guess{number}", "password": "x"})
    answer = intruder.post(reverse("login"), {"username": "mei", "password": "correct horse 9"})
    assert answer.status_code == 429
    colleague = Client(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.10")
    answer = colleague.post(reverse("login"), {"username": "mei", "password": "correct horse 9"})
    assert answer.status_code == 302
    session = SignedInSession.objects.get()
    assert session.ip_address == "203.0.113.10"


PYTHON = str(ROOT / ".venv/bin/python")


def fresh_install(folder: Path, **settings: str) -> dict[str, str]:
    """The environment of a fresh embedded install (SQLite, the ORM broker, the database
    cache) in ``folder``, migrated: this process's, without its ReplyHub settings."""
    env = {k: v for k, v in os.environ.items() if not _settings_variable(k)}
    env.update(REPLYHUB_VAR_DIR=str(folder), SECRET_KEY=secrets.token_urlsafe(50), **settings)
    manage(env, "migrate")
    return env


def manage(env: dict[str, str], *argv: str) -> str:
    """``manage.py *argv`` in its own process; what it printed."""
    done = subprocess.run(
        [PYTHON, "manage.py", *argv, "-v", "0"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_failed_logins_counted_by_one_web_process_lock_the_login_in_another(tmp_path):
    """gunicorn runs several processes: without Redis the counters are in the database
    (each process's own memory would give an intruder as many tries per process)."""
    env = fresh_install(tmp_path, REPLYHUB_LOGIN_ATTEMPTS="3")
    request = "from django.test import RequestFactory; r = RequestFactory().post('/')\n"
    fail = "from drafts.login import count_failure\nfor _ in range(3): count_failure(r, 'ana')"
    ask = "from drafts.login import locked_out\nprint(locked_out(r, 'ana'), locked_out(r, 'bo'))"
    assert manage(env, "shell", "-c", request + ask) == "False False"
    manage(env, "shell", "-c", request + fail)
    assert manage(env, "shell", "-c", request + ask) == "True False"


def test_a_workers_status_is_not_written_to_the_database_cache(tmp_path):
    """django-q2 saves each cluster's status twice a second into its cache: the database
    cache (and SQLite's single writer) must not get those writes for ever."""
    env = fresh_install(
        tmp_path, REPLYHUB_MODEL=str(tmp_path / "no-model"), REPLYHUB_IO_WORKERS="0"
    )
    log = tmp_path / "cluster.log"
    with log.open("wb") as output:
        cluster = subprocess.Popen(
            [PYTHON, "manage.py", "qcluster"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    database = sqlite3.connect(tmp_path / "replyhub.sqlite3")
    try:
        wait_for(lambda: "running" in log.read_text(), "the cluster to run", 60, log)
        time.sleep(3)  # six status saves
        keys = [row[0] for row in database.execute("SELECT cache_key FROM replyhub_cache")]
        assert not [key for key in keys if "django_q" in key or "stat" in key.lower()], keys
    finally:
        database.close()
        cluster.send_signal(signal.SIGTERM)  # the cluster stops its own processes
        try:
            cluster.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(cluster.pid, signal.SIGKILL)
            cluster.wait()


# -- a real nginx in front of gunicorn ------------------------------------------------------


class Visitor:
    """A browser on one loopback address, over HTTPS through nginx: keeps its cookies and
    sends the CSRF token back as a form does."""

    def __init__(self, port: int, address: str, host: str) -> None:
        self.port, self.address, self.host = port, address, host
        self.cookies: dict[str, str] = {}
        self.context = ssl.create_default_context()
        self.context.check_hostname = False
        self.context.verify_mode = ssl.CERT_NONE  # the test's own self-signed certificate

    def request(
        self, method: str, path: str, form: dict | None = None, headers: dict | None = None
    ) -> tuple[int, dict[str, str], str]:
        connection = http.client.HTTPSConnection(
            "127.0.0.1",
            self.port,
            source_address=(self.address, 0),
            context=self.context,
            timeout=30,
        )
        sent = {"Host": self.host, **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            form = {"csrfmiddlewaretoken": self.cookies.get("csrftoken", ""), **form}
            body = urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
            sent["Origin"] = f"https://{self.host}"
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            for name, value in response.getheaders():
                if name.lower() == "set-cookie":
                    key, _, rest = value.partition("=")
                    self.cookies[key] = rest.split(";", 1)[0]
            return response.status, dict(response.getheaders()), response.read().decode()
        finally:
            connection.close()

    def log_in(self, username: str, password: str, headers: dict | None = None) -> int:
        self.request("GET", "/accounts/login/")
        form = {"username": username, "password": password}
        return self.request("POST", "/accounts/login/", form, headers)[0]


@pytest.fixture
def behind_nginx(tmp_path: Path) -> Iterator[tuple[int, int]]:
    """gunicorn on the loopback behind deploy/nginx.conf; yields nginx's HTTPS and HTTP ports."""
    assert Path(NGINX).exists(), "nginx is missing: `make system-deps` installs it"
    key, certificate = tmp_path / "key.pem", tmp_path / "cert.pem"
    self_signed_certificate(certificate, key)
    web, https, plain = free_port(), free_port(), free_port()
    env_file = tmp_path / "env"
    settings = [
        f"SECRET_KEY={secrets.token_urlsafe(50)}",
        f"REPLYHUB_VAR_DIR={tmp_path / 'var'}",
        f"REPLYHUB_BIND=127.0.0.1:{web}",
        "REPLYHUB_WEB_WORKERS=2",
        "REPLYHUB_HTTPS=1",
        "REPLYHUB_TRUST_X_FORWARDED_PROTO=1",
        "ALLOWED_HOSTS=replyhub.example.com,127.0.0.1",
        "CSRF_TRUSTED_ORIGINS=https://replyhub.example.com",
        "REPLYHUB_LOGIN_ATTEMPTS=1",  # an address is locked after 5 failures
        f"SMTP_PORT={free_port()}",  # nothing is sent
    ]
    env_file.write_text("\n".join(settings) + "\n")
    migrate = with_env(env_file, PYTHON, "manage.py", "migrate", "-v", "0", clean=True)
    assert migrate.returncode == 0, migrate.stderr
    make_users = (
        "from django.contrib.auth.models import User; "
        "[User.objects.create_user(n, password='correct horse 9') for n in ('ana', 'bo')]"
    )
    done = with_env(env_file, PYTHON, "manage.py", "shell", "-c", make_users, clean=True)
    assert done.returncode == 0, done.stderr

    site = (DEPLOY / "nginx.conf").read_text()
    site = site.replace("listen 443 ssl;", f"listen 127.0.0.1:{https} ssl;")
    site = site.replace("listen 80;", f"listen 127.0.0.1:{plain};")
    site = re.sub(r"\n\s*listen \[::\]:\d+( ssl)?;", "", site)  # the loopback's IPv6 may be off
    site = site.replace("/etc/ssl/certs/replyhub.example.com.pem", str(certificate))
    site = site.replace("/etc/ssl/private/replyhub.example.com.key", str(key))
    assert site.count("127.0.0.1:8000") == 2
    site = site.replace("127.0.0.1:8000", f"127.0.0.1:{web}")
    (tmp_path / "site.conf").write_text(site)
    # As Debian's /etc/nginx/nginx.conf includes sites-enabled/, with the test's folders.
    (tmp_path / "nginx.conf").write_text(
        f"daemon off;\npid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/nginx-error.log;\n"
        "events {}\n"
        f"http {{\n  access_log {tmp_path}/nginx-access.log;\n"
        f"  client_body_temp_path {tmp_path}/body;\n  proxy_temp_path {tmp_path}/proxy;\n"
        f"  include {tmp_path}/site.conf;\n}}\n"
    )
    env = {k: v for k, v in os.environ.items() if not _settings_variable(k)}
    env["REPLYHUB_ENV_FILE"] = str(env_file)
    log = tmp_path / "web.log"
    with log.open("wb") as output:
        gunicorn = subprocess.Popen(
            [
                str(DEPLOY / "with-env"),
                str(ROOT / ".venv/bin/gunicorn"),
                "replyhub.wsgi",
                "-c",
                str(DEPLOY / "gunicorn.conf.py"),
            ],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    nginx = subprocess.Popen(
        [NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-e", "stderr"],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "nginx.log").open("wb"),
        start_new_session=True,
    )
    try:
        probe = Visitor(https, "127.0.0.1", "replyhub.example.com")
        wait_for(lambda: probe.request("GET", "/accounts/login/")[0] == 200, "nginx", 60, log)
        yield https, plain
    finally:
        for process in (nginx, gunicorn):
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def test_behind_nginx_one_clients_failed_logins_do_not_lock_out_another(behind_nginx):
    https, plain = behind_nginx
    intruder = Visitor(https, "127.0.0.5", "replyhub.example.com")
    for number in range(5):
        assert intruder.log_in(f"guess{number}", "wrong") == 200  # the form again, with an error
    # Its address is locked, whatever it claims to be.
    assert intruder.log_in("ana", "correct horse 9") == 429
    assert intruder.log_in("ana", "correct horse 9", {"X-Forwarded-For": "127.0.0.6"}) == 429

    colleague = Visitor(https, "127.0.0.6", "replyhub.example.com")
    assert colleague.log_in("bo", "correct horse 9") == 302
    status, _, page = colleague.request("GET", "/account/security/")
    assert status == 200
    assert "127.0.0.6" in page and "127.0.0.1" not in page

    # The rest of the site file: /metrics only from the internal network, HTTP to HTTPS.
    assert colleague.request("GET", "/metrics")[0] == 403
    connection = http.client.HTTPConnection("127.0.0.1", plain, timeout=10)
    connection.request("GET", "/queue/?page=2", headers={"Host": "replyhub.example.com"})
    response = connection.getresponse()
    assert response.status == 301
    assert response.getheader("Location") == "https://replyhub.example.com/queue/?page=2"

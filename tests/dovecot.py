"""A real Dovecot IMAP server for tests: own config, own port, throwaway mail store.

Needs Debian's `dovecot-imapd` (installed by .ci/run). The server runs in the
foreground (`dovecot -F`) as a child of the test process and is stopped afterwards.
"""

from __future__ import annotations

import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
DOVEADM = shutil.which("doveadm") or "/usr/bin/doveadm"

CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{root}/mail/%u
default_login_user = {login_user}
default_internal_user = {internal_user}
default_internal_group = {internal_group}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Dovecot:
    """One Dovecot instance with one user whose INBOX starts empty."""

    user = "support@acme.example"
    password = "imap-test-password"

    def __init__(self, tls: bool = False) -> None:
        # Not pytest's tmp_path: its parents are private to root, and the mail processes
        # run as an unprivileged user (Dovecot refuses mail access as root).
        root = self.root = Path(tempfile.mkdtemp(prefix="replyhub-dovecot-"))
        self.port = _free_port()
        for folder in ("run", "state", "mail", "home"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        uid, gid = os.getuid(), os.getgid()
        if uid == 0:
            nobody = pwd.getpwnam("nobody")
            uid, gid = nobody.pw_uid, nobody.pw_gid
        login = _system_user("dovenull")
        internal = _system_user("dovecot")
        (root / "passwd").write_text(f"{self.user}:{{PLAIN}}{self.password}\n")
        self.imaps_port = _free_port() if tls else 0
        ssl_config = "ssl = no"
        if tls:
            self.ca_file = str(root / "cert.pem")
            self_signed_certificate(root / "cert.pem", root / "key.pem")
            ssl_config = f"ssl = yes\nssl_cert = <{root}/cert.pem\nssl_key = <{root}/key.pem"
        (root / "dovecot.conf").write_text(
            CONFIG.format(
                root=root,
                port=self.port,
                imaps_port=self.imaps_port,
                ssl=ssl_config,
                uid=uid,
                gid=gid,
                login_user=login,
                internal_user=internal,
                internal_group=internal,
            )
        )
        for folder in ("mail", "home"):
            os.chown(root / folder, uid, gid)
        root.chmod(0o755)
        self.process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(root / "dovecot.conf")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.process.stdout.read().decode(errors="replace")
                raise RuntimeError(f"dovecot exited: {output}\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"dovecot did not listen on {self.port}\n{self.log()}")

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def client(self) -> imaplib.IMAP4:
        """A logged-in client, as a mail program would be."""
        client = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        client.login(self.user, self.password)
        return client

    def deliver(self, raw: bytes, folder: str = "INBOX") -> None:
        """Put a message into the folder, unread, with IMAP APPEND."""
        client = self.client()
        try:
            client.append(folder, "", None, raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
        finally:
            client.logout()

    def flags(self, folder: str = "INBOX") -> list[bytes]:
        """The flags of every message in the folder, in order."""
        client = self.client()
        try:
            client.select(folder, readonly=True)
            _, data = client.fetch("1:*", "(FLAGS)")
            return [item for item in data if item]
        finally:
            client.logout()

    def add_user(self, user: str, password: str) -> None:
        """Another account on this server (Dovecot rereads the file on change)."""
        with (self.root / "passwd").open("a") as passwd:
            passwd.write(f"{user}:{{PLAIN}}{password}\n")

    def delete(self, uid: int, folder: str = "INBOX") -> None:
        """Delete one message for good, as a mail client's "delete and expunge" does."""
        client = self.client()
        try:
            client.select(folder)
            client.uid("STORE", str(uid), "+FLAGS", "(\\Deleted)")
            client.expunge()
        finally:
            client.logout()

    def set_uidvalidity(self, value: int, folder: str = "INBOX") -> None:
        """Give the folder a new UIDVALIDITY, as a server migration or restore does."""
        subprocess.run(
            [
                DOVEADM,
                "-c",
                str(self.root / "dovecot.conf"),
                "mailbox",
                "update",
                "-u",
                self.user,
                "--uid-validity",
                str(value),
                folder,
            ],
            check=True,
            capture_output=True,
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.root, ignore_errors=True)


def _system_user(name: str) -> str:
    try:
        pwd.getpwnam(name)
        return name
    except KeyError:
        return pwd.getpwuid(os.getuid()).pw_name


def self_signed_certificate(cert: Path, key: Path) -> None:
    """A certificate for 127.0.0.1 and localhost; the client trusts it as its CA file."""
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )

"""deploy/: the supervisord program set, the systemd units, the environment file, and
`manage.py check --deploy` for the documented production settings.

The configuration files name /opt/replyhub (the code), /etc/replyhub/env and
/var/log/replyhub, as installed by docs/operations.md; the tests put this checkout and
temporary folders in their place and change nothing else.
"""

from __future__ import annotations

import configparser
import contextlib
import getpass
import http.client
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from django.core.management import get_commands

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
INSTALLED = "/opt/replyhub"
UNITS = [
    "replyhub-web.service",
    "replyhub-worker@.service",
    "replyhub-io.service",
    "replyhub-mail.service",
]


def in_checkout(path: str) -> Path:
    """Where a path under /opt/replyhub is in this checkout."""
    assert path.startswith(INSTALLED + "/"), path
    return ROOT / path[len(INSTALLED) + 1 :]


def check_command(command: str) -> None:
    """The command exists as installed: executables, the WSGI module, manage.py subcommands."""
    argv = shlex.split(command)
    if argv[0] == f"{INSTALLED}/deploy/with-env":
        assert os.access(in_checkout(argv[0]), os.X_OK), argv[0]
        argv = argv[1:]
    program = Path(argv[0]).name
    assert argv[0].startswith(f"{INSTALLED}/.venv/bin/"), argv[0]
    assert os.access(ROOT / ".venv" / "bin" / program, os.X_OK), argv[0]
    if program == "gunicorn":
        module = argv[1]
        assert module == "replyhub.wsgi"
        assert argv[2] == "-c" and in_checkout(argv[3]).is_file(), argv
        __import__(module)
        assert callable(sys.modules[module].application)
    else:
        assert program == "python" and argv[1] == "manage.py", argv
        assert argv[2] in get_commands(), f"manage.py has no command {argv[2]!r}"


def supervisor_config() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser()
    parser.read(DEPLOY / "supervisord.conf")
    return parser


def unit(name: str) -> configparser.RawConfigParser:
    # systemd keys are case-sensitive and may repeat (strict=False).
    parser = configparser.RawConfigParser(strict=False)
    parser.optionxform = str
    parser.read(DEPLOY / "systemd" / name)
    return parser


# -- supervisord ------------------------------------------------------------------------


def test_supervisord_runs_the_web_server_the_workers_and_the_mail_watcher():
    config = supervisor_config()
    programs = {s.split(":", 1)[1] for s in config.sections() if s.startswith("program:")}
    assert programs == {"replyhub-web", "replyhub-worker", "replyhub-io", "replyhub-mail"}
    assert set(config["group:replyhub"]["programs"].split(",")) == programs
    for name in programs:
        program = config[f"program:{name}"]
        check_command(program["command"])
        assert program["autorestart"] == "true"
        assert int(program["startretries"]) >= 3 and int(program["startsecs"]) >= 1
        assert program["directory"] == INSTALLED
        assert program["user"] == "replyhub"
        assert program["stdout_logfile"].startswith("/var/log/replyhub/")
        assert program["redirect_stderr"] == "true"
    # The IMAP watcher fails without IMAP settings: it starts only when switched on.
    assert config["program:replyhub-mail"]["autostart"] == "false"
    # A stop signals the cluster's main process only; KILL reaches the whole group.
    for cluster in ("replyhub-worker", "replyhub-io"):
        worker = config[f"program:{cluster}"]
        assert (worker["stopasgroup"], worker["killasgroup"]) == ("false", "true")
    assert config["program:replyhub-io"]["autostart"] == "true"  # approved replies go out


# -- systemd ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", UNITS)
def test_each_systemd_unit_restarts_on_failure_with_the_environment_file(name):
    config = unit(name)
    service = config["Service"]
    check_command(service["ExecStart"])
    assert service["Restart"] == "on-failure"
    assert int(service["RestartSec"]) >= 1
    assert service["EnvironmentFile"] == "/etc/replyhub/env"
    assert service["WorkingDirectory"] == INSTALLED
    assert (service["User"], service["Group"]) == ("replyhub", "replyhub")
    assert config["Install"]["WantedBy"] == "multi-user.target"


def test_the_worker_unit_is_a_template_one_instance_per_gpu():
    service = unit("replyhub-worker@.service")["Service"]
    assert service["Environment"] == "CUDA_VISIBLE_DEVICES=%i"
    assert service["KillMode"] == "mixed"


def test_the_io_unit_runs_the_io_worker_stopped_as_a_cluster():
    service = unit("replyhub-io.service")["Service"]
    assert service["ExecStart"].endswith("manage.py io_worker")
    assert service["KillMode"] == "mixed"


def test_systemd_accepts_the_units(tmp_path):
    """systemd-analyze checks every key and that each ExecStart= is executable."""
    for name in UNITS:
        text = (DEPLOY / "systemd" / name).read_text().replace(INSTALLED, str(ROOT))
        # A template is checked as an instance, with %i filled in.
        (tmp_path / name.replace("@.", "@0.")).write_text(text)
    done = subprocess.run(
        ["systemd-analyze", "verify", *sorted(str(p) for p in tmp_path.iterdir())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == ""


# -- the environment file ---------------------------------------------------------------


def env_example() -> dict[str, str]:
    """deploy/env.example's variables, as systemd and deploy/with-env read them."""
    values = {}
    for line in (DEPLOY / "env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def test_every_variable_in_the_example_is_one_replyhub_reads():
    documented = set(env_example())
    for line in (DEPLOY / "env.example").read_text().splitlines():
        if line.startswith("#") and "=" in line and line[1:2].isupper():
            documented.add(line[1:].split("=", 1)[0])  # commented-out examples too
    sources = "".join(
        path.read_text()
        for folder in ("replyhub", "drafts", "deploy")
        for path in (ROOT / folder).rglob("*.py")
    )
    unknown = sorted(name for name in documented if f'"{name}"' not in sources)
    assert unknown == [], f"env.example sets variables nothing reads: {unknown}"


def with_env(
    env_file: Path, *argv: str, clean: bool = False, **env: str
) -> subprocess.CompletedProcess:
    """Run ``argv`` through deploy/with-env; ``clean``: with no ReplyHub settings inherited
    from this process (the suite's own DATABASE_URL, REDIS_URL...), only the file's."""
    inherited = {k: v for k, v in os.environ.items() if not (clean and _settings_variable(k))}
    environment = {**inherited, "REPLYHUB_ENV_FILE": str(env_file), **env}
    return subprocess.run(
        [str(DEPLOY / "with-env"), *argv], env=environment, capture_output=True, text=True
    )


def test_with_env_reads_the_file_as_systemd_does(tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text(
        "# a comment\n; another\n\n"
        "PLAIN=two words\n"
        'QUOTED="a $HOME and a \\ stay"\n'
        "SINGLE='x=1'\n"
        "KEPT=from the file\n"
    )
    show = "import json, os; print(json.dumps({k: os.environ.get(k) for k in "
    show += "['PLAIN', 'QUOTED', 'SINGLE', 'KEPT']}))"
    done = with_env(env_file, sys.executable, "-c", show, KEPT="from supervisord")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "PLAIN": "two words",
        "QUOTED": "a $HOME and a \\ stay",
        "SINGLE": "x=1",
        "KEPT": "from supervisord",  # a program's own environment= wins
    }


def test_with_env_names_a_bad_line_and_a_missing_file(tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text("GOOD=1\nthis is not a setting\n")
    done = with_env(env_file, "true")
    assert done.returncode != 0
    assert f"{env_file}, line 2: not KEY=value" in done.stderr
    done = with_env(tmp_path / "missing", "true")
    assert done.returncode != 0
    assert "no such environment file" in done.stderr


# -- manage.py check --deploy -----------------------------------------------------------


def check_deploy(tmp_path: Path, **overrides: str) -> subprocess.CompletedProcess:
    """`manage.py check --deploy` with env.example's settings (and ``overrides``)."""
    inherited = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG")
        and not k.startswith(("REPLYHUB_", "SECURE_", "IMAP_", "SMTP_"))
    }
    env = {**inherited, **env_example(), "REPLYHUB_VAR_DIR": str(tmp_path), **overrides}
    env = {k: v for k, v in env.items() if v is not None}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_the_documented_production_settings(tmp_path):
    done = check_deploy(tmp_path, SECRET_KEY=secrets.token_urlsafe(50))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout


def test_check_deploy_warns_while_the_secret_key_is_the_placeholder(tmp_path):
    done = check_deploy(tmp_path)  # env.example as it comes: SECRET_KEY=replace-me
    assert done.returncode != 0
    assert "security.W009" in done.stderr + done.stdout


def test_check_deploy_warns_when_the_secret_key_is_not_in_the_environment(tmp_path):
    done = check_deploy(tmp_path, SECRET_KEY=None)
    assert done.returncode != 0
    output = done.stderr + done.stdout
    assert "replyhub.W010" in output
    assert "SECRET_KEY is not set in the environment" in output
    assert "security.W009" not in output  # the generated key itself is strong


def test_check_deploy_warns_about_plain_http(tmp_path):
    plain = {"REPLYHUB_HTTPS": "0", "REPLYHUB_HSTS_SECONDS": None}
    done = check_deploy(tmp_path, SECRET_KEY=secrets.token_urlsafe(50), **plain)
    output = done.stderr + done.stdout
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in output


def test_check_deploy_warns_behind_a_proxy_it_does_not_trust(tmp_path):
    done = check_deploy(tmp_path, SECRET_KEY=secrets.token_urlsafe(50), REPLYHUB_TRUSTED_PROXIES="")
    output = done.stderr + done.stdout
    assert done.returncode != 0
    assert "replyhub.W012" in output
    assert "failed logins of anyone lock out everyone" in output


# -- a real supervisord -----------------------------------------------------------------


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    """GET without following redirects: status, headers, body."""
    host_port = url.split("/")[2]
    connection = http.client.HTTPConnection(host_port, timeout=10)
    try:
        connection.request("GET", "/" + url.split("/", 3)[3])
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def wait_for(predicate, what: str, timeout: float, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if value := predicate():
                return value
        time.sleep(1)
    tail = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
    pytest.fail(f"timed out after {timeout} s waiting for {what}\n{tail}")


class Supervisor:
    """supervisord with deploy/supervisord.conf, included as Debian's supervisord does."""

    def __init__(self, folder: Path, env_file: Path) -> None:
        self.folder = folder
        self.logs = folder / "logs"
        self.logs.mkdir()
        programs = (DEPLOY / "supervisord.conf").read_text()
        programs = programs.replace(INSTALLED, str(ROOT))
        programs = programs.replace("/var/log/replyhub", str(self.logs))
        programs = programs.replace("user=replyhub", f"user={getpass.getuser()}")
        (folder / "replyhub.conf").write_text(programs)
        self.config = folder / "supervisord.conf"
        self.config.write_text(
            f"[supervisord]\nnodaemon=true\nlogfile={folder}/supervisord.log\n"
            f"pidfile={folder}/supervisord.pid\nchildlogdir={self.logs}\n"
            f"[unix_http_server]\nfile={folder}/supervisor.sock\n"
            "[rpcinterface:supervisor]\n"
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n"
            f"[supervisorctl]\nserverurl=unix://{folder}/supervisor.sock\n"
            f"[include]\nfiles={folder}/replyhub.conf\n"
        )
        # The programs get their settings from the file alone, as on a server.
        env = {k: v for k, v in os.environ.items() if not _settings_variable(k)}
        env["REPLYHUB_ENV_FILE"] = str(env_file)
        self.process = subprocess.Popen(
            [shutil.which("supervisord") or "supervisord", "-c", str(self.config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def log(self) -> Path:
        return self.folder / "supervisord.log"

    def ctl(self, *args: str) -> str:
        done = subprocess.run(
            ["supervisorctl", "-c", str(self.config), *args],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return done.stdout

    def status(self) -> dict[str, tuple[str, int | None]]:
        """{program: (state, pid)}"""
        states = {}
        for line in self.ctl("status").splitlines():
            parts = line.split()
            if len(parts) >= 2:
                pid = int(parts[3].rstrip(",")) if len(parts) > 3 and parts[2] == "pid" else None
                states[parts[0]] = (parts[1], pid)
        return states

    def stop(self) -> None:
        processes = []
        with contextlib.suppress(psutil.Error):
            processes = psutil.Process(self.process.pid).children(recursive=True)
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            self.process.kill()
        _, alive = psutil.wait_procs(processes, timeout=10)
        for process in alive:
            with contextlib.suppress(psutil.Error):
                process.kill()


def _settings_variable(name: str) -> bool:
    return name in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS") or (
        name.startswith(("REPLYHUB_", "SECURE_", "IMAP_", "SMTP_"))
    )


@pytest.fixture
def short_folder() -> Iterator[Path]:
    """A temporary folder with a short path: a unix socket's path is limited to ~100 bytes."""
    folder = Path(tempfile.mkdtemp(prefix="rh-sv-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_supervisord_serves_replyhub_and_restarts_a_killed_worker(short_folder):
    """The deploy config for real: gunicorn answers the probes (HTTPS settings on, JSON
    logs), the worker reports with the bundled model loaded, and a worker killed with
    SIGKILL (its whole process group, as the kernel's OOM killer may) comes back."""
    assert shutil.which("supervisord"), "supervisord is missing: `make system-deps` installs it"
    port = free_port()
    env_file = short_folder / "env"
    env_file.write_text(
        "\n".join(
            [
                f"SECRET_KEY={secrets.token_urlsafe(50)}",
                f"REPLYHUB_VAR_DIR={short_folder / 'var'}",
                f"REPLYHUB_BIND=127.0.0.1:{port}",
                "REPLYHUB_WEB_WORKERS=1",
                "REPLYHUB_LOG_FORMAT=json",
                "REPLYHUB_HTTPS=1",
                "ALLOWED_HOSTS=127.0.0.1,localhost",
                f"SMTP_PORT={free_port()}",  # nothing is sent in this test
            ]
        )
        + "\n"
    )
    python = str(ROOT / ".venv/bin/python")
    migrate = with_env(env_file, python, "manage.py", "migrate", "-v", "0", clean=True)
    assert migrate.returncode == 0, migrate.stderr
    supervisor = Supervisor(short_folder, env_file)
    base = f"http://127.0.0.1:{port}"
    web_log = supervisor.logs / "web.log"
    try:
        wait_for(lambda: get(f"{base}/healthz")[0] == 200, "/healthz", 90, supervisor.log)
        status, _, body = get(f"{base}/healthz")
        assert json.loads(body) == {"status": "ok"}
        # Production settings: pages redirect to HTTPS, the probes answer over plain HTTP.
        status, headers, _ = get(f"{base}/")
        assert status == 301 and headers["Location"].startswith("https://")

        def running():
            states = supervisor.status()
            started = [states[f"replyhub:replyhub-{p}"][0] for p in ("web", "worker-0", "io")]
            return states if started == ["RUNNING"] * 3 else None

        states = wait_for(running, "web and workers RUNNING (past startsecs)", 60, supervisor.log)
        assert states["replyhub:replyhub-mail"][0] == "STOPPED"  # no IMAP configured

        def ready():
            status, _, body = get(f"{base}/readyz")
            return json.loads(body) if status == 200 else None

        report = wait_for(ready, "/readyz (the worker loads the bundled model)", 300, web_log)
        assert report["checks"]["model"]["engine"] == "transformers"
        assert report["checks"]["io_worker"]["status"] == "ok"  # replyhub-io reported

        worker_pid = states["replyhub:replyhub-worker-0"][1]
        cluster = {worker_pid, *(p.pid for p in psutil.Process(worker_pid).children(True))}
        assert os.getpgid(worker_pid) == worker_pid  # supervisord gave it its own group
        os.killpg(worker_pid, signal.SIGKILL)

        def restarted():
            state, pid = supervisor.status()["replyhub:replyhub-worker-0"]
            return pid if state == "RUNNING" and pid != worker_pid else None

        wait_for(restarted, "the worker to be restarted", 60, supervisor.log)
        assert "exited: replyhub-worker-0 (terminated by SIGKILL" in supervisor.log.read_text()

        def new_heartbeat():
            worker = json.loads(get(f"{base}/readyz")[2])["checks"]["worker"]
            return worker.get("pid") not in cluster and worker["status"] == "ok"

        wait_for(new_heartbeat, "a heartbeat from the restarted worker", 180, supervisor.log)
    finally:
        supervisor.stop()
    # gunicorn's own lines and the access log are JSON too.
    lines = [json.loads(line) for line in web_log.read_text().splitlines() if line.strip()]
    access = [line["message"] for line in lines if line["logger"] == "gunicorn.access"]
    assert any("GET /healthz" in message for message in access)
    assert any(line["logger"] == "gunicorn.error" for line in lines)

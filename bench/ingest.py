"""Ingestion benchmark: import a generated mbox into SQLite and PostgreSQL.

    .venv/bin/python bench/ingest.py --messages 10000 --databases sqlite,postgres

Generates a seeded mbox of varied customer mail in a temporary folder, then for each
database runs ``manage.py migrate`` and times ``manage.py import_mail`` in a fresh
subprocess, exactly as an operator would run it. Reports messages per second, the import
process's peak RSS and the machine, as a Markdown table (see docs/benchmarks.md).

SQLite gets a second, smaller run (``--small``, default a fifth of ``--messages``): the
same peak RSS for both sizes shows that memory does not grow with the mbox.

PostgreSQL runs in its own database, ``replyhub_bench``, dropped and recreated at the
start and dropped at the end; the ``test`` and ``test_test`` databases that CI uses are
never touched. Nothing is written into the repository.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import itertools
import os
import platform
import pstats
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email import policy
from email.generator import BytesGenerator
from email.message import EmailMessage
from email.utils import format_datetime
from importlib import metadata
from pathlib import Path

import psutil
import psycopg

REPO = Path(__file__).resolve().parent.parent
PG_SERVER_URL = "postgres://postgres@127.0.0.1:5432/"
PG_BENCH_DB = "replyhub_bench"
# CI runs the test suite in these; the benchmark must never drop or write to them.
PG_PROTECTED = {"test", "test_test", "postgres", "template0", "template1"}
RSS_POLL_SECONDS = 0.05
SUPPORT_ADDRESS = "support@acme.example"
MIN_BYTES, MAX_BYTES = 500, 30_000  # message sizes, as the issue asks

# --- Message text --------------------------------------------------------------------------

FIRST_NAMES = ["Alice", "Bob", "Carol", "David", "Emma", "Frank", "Grace", "Hiro", "Ines", "Jon"]
LAST_NAMES = ["Smith", "Brown", "Garcia", "Müller", "Novak", "Okafor", "Rossi", "Tanaka", "Wong"]
ZH_NAMES = ["王伟", "李娜", "张敏", "刘洋", "陈静", "杨帆", "赵磊", "黄丽", "周杰", "吴芳"]
# Big5 has no simplified characters: Taiwanese and Hong Kong customers get their own.
TW_NAMES = ["陳大文", "林美玲", "黃志明", "張淑芬", "李建國", "王雅婷", "吳俊傑", "劉家豪"]
DOMAINS = ["example.com", "mail.example.org", "corp.example.net", "example.cn", "example.com.tw"]

EN_TOPICS = ["Invoice question", "Cannot log in", "Refund for order", "Partnership proposal"]
EN_TOPICS += ["Demo request", "API returns 502 errors", "Upgrade to business plan"]
EN_SENTENCES = [
    "I hope this message finds you well.",
    "We have been using Acme Cloud for about two years and are mostly happy with it.",
    "Since last Tuesday our nightly backup job fails with a timeout after ten minutes.",
    "Could you please tell me why invoice INV-2024-0042 shows a higher amount than agreed?",
    "Our order number is AC-7731 and it was placed on the 3rd of March.",
    "The login page keeps saying that my password is wrong, although I reset it twice.",
    "We would like to book a demo for five people next Thursday at 14:00 Berlin time.",
    "I attached a screenshot of the error and the log file our engineer collected.",
    "The export in CSV format stops at row 65,535 and the rest of the data is missing.",
    "Thanks in advance for your help, and sorry for the long email.",
]
ZH_TOPICS = ["发票问题", "无法登录控制台", "订单退款", "合作意向", "预约产品演示", "接口报错"]
ZH_SENTENCES = [
    "您好，我们公司一直在使用贵司的云服务，整体体验不错。",
    "上周二开始，我们的夜间备份任务总是在十分钟后超时失败。",
    "请问发票号码为 INV-2024-0042 的金额为什么比合同约定的高？",
    "我们的订单号是 AC-7731，下单日期是三月三日。",
    "登录页面一直提示密码错误，但是我已经重置了两次密码。",
    "我们希望下周四下午两点预约一次产品演示，大约五个人参加。",
    "附件是错误截图和我们工程师收集的日志文件。",
    "请问非营利组织或者按年付费有没有折扣？",
    "我们是深圳的一家经销商，希望和贵司洽谈代理合作。",
    "麻烦尽快处理，谢谢！",
]
TW_TOPICS = ["發票問題", "無法登入控制台", "訂單退款", "合作意向", "預約產品展示"]
TW_SENTENCES = [
    "您好，我們公司使用貴司的雲端服務已經兩年了。",
    "從上週二開始，我們的夜間備份工作總是在十分鐘後逾時失敗。",
    "請問發票號碼 INV-2024-0042 的金額為什麼比合約高？",
    "我們的訂單編號是 AC-7731，下單日期是三月三日。",
    "登入頁面一直顯示密碼錯誤，但是我已經重設了兩次密碼。",
    "我們希望下週四下午兩點預約一次產品展示，大約五個人參加。",
    "附件是錯誤截圖和我們工程師收集的記錄檔。",
    "麻煩盡快處理，謝謝！",
]
LANGUAGES = {
    # name: (charset, names, topics, sentences, reply prefix, weight)
    "en": ("utf-8", None, EN_TOPICS, EN_SENTENCES, "Re: ", 55),
    "zh-utf8": ("utf-8", ZH_NAMES, ZH_TOPICS, ZH_SENTENCES, "回复：", 20),
    "zh-gb18030": ("gb18030", ZH_NAMES, ZH_TOPICS, ZH_SENTENCES, "回复：", 15),
    "zh-big5": ("big5", TW_NAMES, TW_TOPICS, TW_SENTENCES, "回覆：", 10),
}
# How the body is packaged, with weights out of 100.
LAYOUTS = {"plain": 50, "html": 15, "alternative": 25, "attachment": 10}
# What kind of message it is, with weights out of 100.
ROLES = {"new": 58, "reply": 34, "auto": 4, "list": 4}


# --- Generating the mbox -------------------------------------------------------------------


@dataclass
class Conversation:
    """What a later reply needs to know about a thread: who, what and which ids."""

    customer: str
    language: str
    subject: str
    message_ids: list[str] = field(default_factory=list)


@dataclass
class MboxStats:
    """What was generated: counts by language, layout and role, and sizes in bytes."""

    path: Path
    kinds: collections.Counter[str] = field(default_factory=collections.Counter)
    sizes: list[int] = field(default_factory=list)


def _weighted(rng: random.Random, weights: dict[str, int]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _paragraphs(rng: random.Random, sentences: list[str], budget: int, charset: str) -> str:
    """Paragraphs of ``sentences`` until their encoded size reaches ``budget`` bytes."""
    chinese = sentences is not EN_SENTENCES  # the other languages have no spaces
    paragraphs: list[str] = []
    size = 0
    while size < budget:
        picked = rng.choices(sentences, k=rng.randint(2, 6))
        if chinese:
            # Nothing to wrap at: mail clients break Chinese lines every ~36 characters.
            paragraph = "".join(picked)
            wrapped = "\n".join(paragraph[i : i + 36] for i in range(0, len(paragraph), 36))
        else:
            wrapped = "\n".join(textwrap.wrap(" ".join(picked), 72))
        paragraphs.append(wrapped)
        size += len(wrapped.encode(charset)) + 2
    return "\n\n".join(paragraphs)


def _html(text: str, charset: str) -> str:
    """A typical mail-client HTML body for ``text``, with markup that parsing must strip."""
    body = "".join(f"<p>{p.replace(chr(10), '<br>')}</p>\n" for p in text.split("\n\n"))
    return (
        f'<html><head><meta charset="{charset}"><style>p {{ margin: 0 }}</style></head>'
        f'<body><div style="font-family: Arial">\n{body}</div>'
        '<script>track()</script><img src="https://tracker.example/p.gif"></body></html>'
    )


def _customer(rng: random.Random, language: str, number: int) -> str:
    names = LANGUAGES[language][1]
    domain = rng.choice(DOMAINS)
    if names is None:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        return f"{first} {last} <{first.lower()}.{number}@{domain}>"
    return f"{rng.choice(names)} <customer{number}@{domain}>"


def build_message(
    rng: random.Random, number: int, when: datetime, open_threads: collections.deque[Conversation]
) -> tuple[EmailMessage, str]:
    """Message ``number`` of the mbox and its kind ("en/plain/new", ...)."""
    role = _weighted(rng, ROLES)
    if role == "reply" and not open_threads:
        role = "new"
    layout = _weighted(rng, LAYOUTS)
    msg = EmailMessage()
    message_id = f"<bench.{number}.{rng.getrandbits(48):012x}@mail.example>"
    if role == "reply":
        convo = rng.choice(open_threads)
        language = convo.language
        prefix = LANGUAGES[language][4]
        msg["Subject"] = f"{prefix}{convo.subject}"
        msg["From"] = convo.customer
        # Some clients drop the threading headers; the subject and sender still match.
        if rng.random() < 0.9:
            msg["In-Reply-To"] = convo.message_ids[-1]
            # Long threads keep the first and the last few ids, as mail clients do.
            msg["References"] = " ".join(convo.message_ids[:1] + convo.message_ids[1:][-9:])
        convo.message_ids.append(message_id)
    else:
        language = _weighted(rng, {k: v[5] for k, v in LANGUAGES.items()})
        topic = rng.choice(LANGUAGES[language][2])
        subject = f"{topic} #{rng.randint(1000, 99999)}"
        if role == "new":
            customer = _customer(rng, language, rng.randint(1, 3000))
            msg["Subject"] = subject
            msg["From"] = customer
            if rng.random() < 0.1:
                msg["Reply-To"] = customer.replace("<", "<billing.")
            open_threads.append(Conversation(customer, language, subject, [message_id]))
        elif role == "auto":
            msg["Subject"] = f"Automatic reply: {subject}" if language == "en" else "自动回复"
            msg["From"] = _customer(rng, language, rng.randint(1, 3000))
            msg["Auto-Submitted"] = "auto-replied"
            msg["X-Autoreply"] = "yes"
        else:
            msg["Subject"] = f"[Newsletter] {subject}"
            msg["From"] = f"News <news@lists.{rng.choice(DOMAINS)}>"
            msg["List-Id"] = "<news.lists.example>"
            msg["List-Unsubscribe"] = "<mailto:leave@lists.example>"
            msg["Precedence"] = "list"
    msg["To"] = f"Acme Support <{SUPPORT_ADDRESS}>"
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = message_id
    charset, _, _, sentences, _, _ = LANGUAGES[language]
    _fill_body(rng, msg, layout, charset, sentences)
    # Fixed boundaries: the stdlib draws them from the global random, not our seed.
    for part_number, part in enumerate(msg.walk()):
        if part.is_multipart():
            part.set_boundary(f"=_bench_{number}_{part_number}_{rng.getrandbits(32):08x}")
    return msg, f"{language}/{layout}/{role}"


def _fill_body(
    rng: random.Random, msg: EmailMessage, layout: str, charset: str, sentences: list[str]
) -> None:
    """Body of ``msg`` in ``layout``, sized so that the whole message is 0.5-30 KB."""
    # Log-uniform: many short mails and a long tail of long ones, as in a real inbox.
    target = int(MIN_BYTES * (MAX_BYTES / MIN_BYTES) ** rng.random())
    attachment = rng.randbytes(rng.randint(1000, 6000)) if layout == "attachment" else b""
    kind = rng.choice([("application", "pdf", "invoice.pdf"), ("image", "png", "截图.png")])
    cte = rng.choice([None, None, "quoted-printable", "base64"])
    budget = max(target - 700 - len(attachment) * 4 // 3, 60)
    # Transfer encodings grow the text by up to 3x (Chinese in quoted-printable), so the
    # text is sized by a guess, then resized from the measured message until it fits.
    for attempt in itertools.count():
        msg.clear_content()
        text = _paragraphs(rng, sentences, budget, charset)
        if layout == "html":
            msg.set_content(_html(text, charset), subtype="html", charset=charset, cte=cte)
        else:
            msg.set_content(text, charset=charset, cte=cte)
        if layout == "alternative":
            msg.add_alternative(_html(text, charset), subtype="html", charset=charset)
        if attachment:
            msg.add_attachment(attachment, maintype=kind[0], subtype=kind[1], filename=kind[2])
        size = len(msg.as_bytes())
        near = abs(size - target) < target // 4 or attempt >= 5
        if near and MIN_BYTES <= size <= MAX_BYTES:
            return
        budget = max(int(budget * target / size), 20)
        if size < MIN_BYTES:
            budget += MIN_BYTES - size  # a body of two short sentences can stay too short


def generate_mbox(
    path: Path, count: int, seed: int, progress: Callable[[int], None] = lambda n: None
) -> MboxStats:
    """Write ``count`` varied messages to the mbox ``path``; the same seed, the same bytes."""
    rng = random.Random(seed)
    stats = MboxStats(path=path)
    # Replies go to recent conversations, and the window keeps memory flat for any count.
    open_threads: collections.deque[Conversation] = collections.deque(maxlen=300)
    when = datetime(2024, 3, 1, 8, 0, tzinfo=timezone(timedelta(hours=8)))
    with path.open("wb") as handle:
        for number in range(1, count + 1):
            when += timedelta(seconds=rng.randint(5, 600))
            msg, kind = build_message(rng, number, when, open_threads)
            sender = re.search(r"<([^>]+)>", str(msg["From"]))
            envelope = sender.group(1) if sender else "MAILER-DAEMON"
            handle.write(f"From {envelope} {when.strftime('%a %b %d %H:%M:%S %Y')}\n".encode())
            start = handle.tell()
            # mangle_from_ quotes body lines starting with "From " so they do not split the mbox.
            BytesGenerator(handle, mangle_from_=True, policy=policy.default).flatten(msg)
            stats.sizes.append(handle.tell() - start)
            handle.write(b"\n")
            stats.kinds.update(kind.split("/"))
            progress(number)
    return stats


# --- Running an import ---------------------------------------------------------------------


@dataclass
class ImportRun:
    """One timed ``manage.py import_mail``: the figures that go into the table."""

    database: str
    messages: int
    seconds: float
    peak_rss_bytes: int
    sampled_rss_bytes: int
    cpu_seconds: float  # user + system; far below ``seconds`` means waiting on disk or locks
    stored: dict[str, int]
    load_before: float
    load_after: float

    @property
    def per_second(self) -> float:
        return self.messages / self.seconds


def subprocess_env(var_dir: Path, database_url: str | None) -> dict[str, str]:
    """The environment the app runs in: a fresh var/ folder, this database, the ORM broker."""
    env = dict(os.environ)
    for name in ("DATABASE_URL", "REDIS_URL", "IMAP_HOST", "SECRET_KEY", "DJANGO_SETTINGS_MODULE"):
        env.pop(name, None)
    env["REPLYHUB_VAR_DIR"] = str(var_dir)
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def manage(app: Path, args: list[str], env: dict[str, str], python: list[str] | None = None) -> str:
    """Run ``app``'s ``manage.py args``; its output, or SystemExit with it on failure."""
    done = subprocess.run(
        [*(python or [sys.executable]), "manage.py", *args],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def timed_import(
    app: Path, mbox: Path, env: dict[str, str], expected: int, show: Callable[[str], None]
) -> tuple[float, int, int, float]:
    """Run import_mail on ``mbox``: wall seconds, peak and sampled RSS in bytes, CPU seconds.

    The peak comes from wait4() on the import process itself, the kernel's high-water mark
    for that one process (getrusage(RUSAGE_CHILDREN) would mix in the earlier migrate).
    Sampling with psutil every 50 ms is a cross-check that can only read lower.
    """
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "import_mail", str(mbox)],
        cwd=app,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    tail: collections.deque[str] = collections.deque(maxlen=30)
    sampled = [0]
    finished = threading.Event()

    def read_output() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line.rstrip())
            if match := re.search(r": (\d+) messages, \d+%", line):
                show(f"importing: {int(match.group(1)):,}/{expected:,} messages")

    def sample_rss() -> None:
        try:
            watched = psutil.Process(proc.pid)
            while not finished.wait(RSS_POLL_SECONDS):
                sampled[0] = max(sampled[0], watched.memory_info().rss)
        except psutil.Error:
            pass  # the process ended between two samples

    threads = [threading.Thread(target=read_output), threading.Thread(target=sample_rss)]
    for thread in threads:
        thread.start()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    finished.set()
    proc.returncode = os.waitstatus_to_exitcode(status)
    for thread in threads:
        thread.join()
    if proc.returncode != 0:
        raise SystemExit(f"import_mail failed ({proc.returncode}):\n" + "\n".join(tail))
    # The kernel's high-water mark; a sample can read a little higher, as Linux sums RSS
    # from per-CPU counters lazily, so the table shows the larger of the two.
    peak = max(usage.ru_maxrss * 1024, sampled[0])
    return seconds, peak, sampled[0], usage.ru_utime + usage.ru_stime


def count_rows(var_dir: Path, url: str | None) -> dict[str, int]:
    """How many messages, threads, drafts and queued tasks the import left in the database."""
    tables = {"messages": "drafts_message", "threads": "drafts_thread", "drafts": "drafts_draft"}
    tables["queued tasks"] = "django_q_ormq"
    conn = sqlite3.connect(var_dir / "replyhub.sqlite3") if url is None else psycopg.connect(url)
    with contextlib.closing(conn):
        return {
            k: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for k, t in tables.items()
        }


def reset_postgres_database(create: bool) -> str:
    """Drop the benchmark's own database, and create it empty again when ``create``.

    Returns its URL. Only ``replyhub_bench`` is ever dropped: CI's databases stay as they are.
    """
    assert PG_BENCH_DB not in PG_PROTECTED
    with psycopg.connect(PG_SERVER_URL + "postgres", autocommit=True) as conn:
        # FORCE: a previous run that was interrupted may still hold a connection.
        conn.execute(f'DROP DATABASE IF EXISTS "{PG_BENCH_DB}" WITH (FORCE)')
        if create:
            conn.execute(f'CREATE DATABASE "{PG_BENCH_DB}"')
    return PG_SERVER_URL + PG_BENCH_DB


def run_import(
    app: Path, database: str, mbox: Path, count: int, show: Callable[[str], None]
) -> ImportRun:
    """Migrate a fresh ``database``, then time the import of ``mbox`` into it and verify it."""
    with tempfile.TemporaryDirectory(prefix="replyhub-bench-var-") as folder:
        var_dir = Path(folder)
        url = reset_postgres_database(create=True) if database == "postgres" else None
        env = subprocess_env(var_dir, url)
        show(f"{database}: migrating a fresh database")
        manage(app, ["migrate", "--noinput"], env)
        load_before = os.getloadavg()[0]
        seconds, peak, sampled, cpu = timed_import(app, mbox, env, count, show)
        load_after = os.getloadavg()[0]
        stored = count_rows(var_dir, url)
    if stored["messages"] != count:
        raise SystemExit(f"{database}: expected {count} messages, found {stored['messages']}")
    return ImportRun(database, count, seconds, peak, sampled, cpu, stored, load_before, load_after)


def profile_import(app: Path, mbox: Path, output: Path, show: Callable[[str], None]) -> None:
    """Import ``mbox`` into a fresh SQLite under cProfile and print the top functions."""
    with tempfile.TemporaryDirectory(prefix="replyhub-bench-var-") as folder:
        env = subprocess_env(Path(folder), None)
        manage(app, ["migrate", "--noinput"], env)
        show(f"profiling the import of {mbox.name} into SQLite")
        profiler = [sys.executable, "-m", "cProfile", "-o", str(output)]
        manage(app, ["import_mail", str(mbox)], env, python=profiler)
    pstats.Stats(str(output)).sort_stats("cumulative").print_stats(25)


# --- The machine and the report ------------------------------------------------------------


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
    total_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())[1])
    try:
        with psycopg.connect(PG_SERVER_URL + "postgres") as conn:
            postgres = conn.execute("SHOW server_version").fetchone()[0]
    except psycopg.Error:
        postgres = "not reachable"
    return {
        "CPU": f"{cpu[1].strip() if cpu else 'unknown'}, {os.cpu_count()} cores",
        "RAM": f"{total_kb / 1024**2:.1f} GiB",
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "Django": metadata.version("django"),
        "django-q2": metadata.version("django-q2"),
        "SQLite": sqlite3.sqlite_version,
        "PostgreSQL": postgres,
    }


def markdown_table(runs: list[ImportRun]) -> str:
    """The results as a Markdown table."""
    lines = [
        "| database | messages | seconds | messages/s | peak RSS (MB) |",
        "|---|---:|---:|---:|---:|",
    ]
    for run in runs:
        lines.append(
            f"| {run.database} | {run.messages:,} | {run.seconds:.1f} | "
            f"{run.per_second:,.0f} | {run.peak_rss_bytes / 1e6:.0f} |"
        )
    return "\n".join(lines)


def wait_for_quiet(max_load: float, patience: float, show: Callable[[str], None]) -> bool:
    """Wait until the 1-minute load average is below ``max_load``; False if it never was."""
    deadline = time.monotonic() + patience
    while (load := os.getloadavg()[0]) >= max_load:
        if time.monotonic() >= deadline:
            show(f"load average still {load:.2f} after {patience:.0f} s; measuring anyway")
            return False
        show(f"load average {load:.2f} >= {max_load}; checking again in 60 s")
        time.sleep(min(60.0, max(deadline - time.monotonic(), 1.0)))
    return True


class Progress:
    """One status line: rewritten in place on a terminal, at most every 5 s in a log."""

    def __init__(self) -> None:
        self.tty, self.last = sys.stderr.isatty(), 0.0

    def __call__(self, text: str, final: bool = False) -> None:
        if self.tty:
            print(f"\r\033[K{text}", end="\n" if final else "", file=sys.stderr, flush=True)
        elif final or time.monotonic() - self.last >= 5:
            print(text, file=sys.stderr, flush=True)
            self.last = time.monotonic()

    def done(self, text: str) -> None:
        self(text, final=True)


def make_mbox(folder: Path, count: int, seed: int, progress: Progress) -> MboxStats:
    """Generate the mbox of ``count`` messages in ``folder``, showing progress."""
    path = folder / f"bench-{count}.mbox"
    step = max(count // 100, 1)

    def show(number: int) -> None:
        if number % step == 0 or number == count:
            progress(f"generating {path.name}: {number:,}/{count:,} ({100 * number // count}%)")

    stats = generate_mbox(path, count, seed, show)
    sizes = sorted(stats.sizes)
    progress.done(
        f"generated {path.name}: {count:,} messages, {path.stat().st_size / 1e6:.1f} MB, sizes "
        f"{sizes[0]:,}-{sizes[-1]:,} bytes (median {sizes[len(sizes) // 2]:,})"
    )
    return stats


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--messages", type=int, default=10_000, help="mbox size (default 10000)")
    add("--databases", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    add("--small", type=int, help="also import this many into SQLite (default messages/5; 0: no)")
    add("--seed", type=int, default=20240301, help="seed of the mbox generator")
    add("--wait-quiet", type=float, default=0, help="wait up to this many s for a quiet machine")
    add("--max-load", type=float, default=1.0, help="quiet: 1-minute load average below this")
    add("--app", type=Path, default=REPO, help="ReplyHub tree to run (default: this checkout)")
    add("--profile", type=Path, help="instead: profile one SQLite import into this file")
    args = parser.parse_args(argv)
    args.databases = [d.strip() for d in args.databases.split(",") if d.strip()]
    unknown = set(args.databases) - {"sqlite", "postgres"}
    if unknown or not args.databases:
        parser.error(f"--databases: unknown {', '.join(sorted(unknown)) or 'empty list'}")
    if args.small is None:
        args.small = args.messages // 5
    return args


def planned_runs(args: argparse.Namespace) -> Iterator[tuple[str, int]]:
    """(database, message count) for every import, the small SQLite run first."""
    if args.small and "sqlite" in args.databases:
        yield "sqlite", args.small
    for database in args.databases:
        yield database, args.messages


def main(argv: list[str] | None = None) -> int:
    """Generate, import, verify and report; see the module docstring."""
    args = parse_args(argv)
    progress = Progress()
    # A plain `kill` still removes the temporary folders and the benchmark database.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="replyhub-bench-") as folder:
        if args.profile:
            mbox = make_mbox(Path(folder), args.messages, args.seed, progress).path
            profile_import(args.app, mbox, args.profile, progress.done)
            return 0
        mboxes = {
            count: make_mbox(Path(folder), count, args.seed, progress)
            for count in sorted({count for _, count in planned_runs(args)})
        }
        mix = sorted(mboxes[args.messages].kinds.items())
        print("mbox mix:", ", ".join(f"{kind} {number:,}" for kind, number in mix))
        quiet = True
        if args.wait_quiet:
            quiet = wait_for_quiet(args.max_load, args.wait_quiet, progress.done)
        runs: list[ImportRun] = []
        try:
            for database, count in planned_runs(args):
                run = run_import(args.app, database, mboxes[count].path, count, progress)
                progress.done(
                    f"{database}, {count:,} messages: {run.seconds:.1f} s, "
                    f"{run.per_second:,.0f} msg/s, peak RSS {run.peak_rss_bytes / 1e6:.0f} MB "
                    f"(sampled {run.sampled_rss_bytes / 1e6:.0f} MB), CPU {run.cpu_seconds:.1f} s, "
                    f"load {run.load_before:.2f} -> {run.load_after:.2f}; stored "
                    + ", ".join(f"{v:,} {k}" for k, v in run.stored.items())
                )
                runs.append(run)
        finally:
            if "postgres" in args.databases:
                reset_postgres_database(create=False)
    print()
    print(f"Command: .venv/bin/python bench/ingest.py {' '.join(sys.argv[1:])}".rstrip())
    print()
    for name, value in machine().items():
        print(f"- {name}: {value}")
    if not quiet:
        print(f"- Load: the 1-minute load average stayed at or above {args.max_load}")
    print()
    print(markdown_table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())

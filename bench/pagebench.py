"""What the page benchmarks (review_queue.py, stats.py) share: a fresh database per run.

The parent process runs each database in a child process of the same script, with
REPLYHUB_VAR_DIR (SQLite) or DATABASE_URL (a PostgreSQL database created and dropped for
the run) set before Django starts; the child migrates, seeds unless ``--var-dir`` kept an
earlier seed, measures, and prints its rows as JSON on its last line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = "postgres://postgres@127.0.0.1:5432/postgres"
PG_SERVER = "postgres://postgres@127.0.0.1:5432/"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def wait(check: Callable[[], object], what: str, timeout: float = 3600, every: float = 0.5) -> None:
    """Poll ``check`` every ``every`` seconds until it is true; exit naming ``what`` after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(every)


def timings(times: list[float]) -> dict[str, float]:
    """p50, p95 and max of request times in milliseconds."""
    times = sorted(times)
    return {
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(times[int(0.95 * (len(times) - 1))], 1),
        "max_ms": round(times[-1], 1),
    }


def prepare(already_seeded: Callable[[], int], seed: Callable[[], None], what: str) -> None:
    """In the child: Django set up for measuring, migrated, and seeded once."""
    import django

    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "replyhub.settings")
    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import setup_test_environment

    setup_test_environment()  # so responses carry their template context
    call_command("migrate", verbosity=0)
    if count := already_seeded():
        say(f"  reusing the {count:,} {what} already seeded")
        return
    seed()
    if connection.vendor == "postgresql":  # what autovacuum does soon after a bulk load
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")


def _postgres(statement: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(statement)


def run_child(
    script: str,
    database: str,
    name: str,
    argv: list[str],
    var_dir: str | None,
    extra_env: dict[str, str] | None = None,
):
    """Run ``script --child argv`` on a fresh ``database`` ("sqlite" or "postgres"); its rows.

    ``name`` names the PostgreSQL database (dropped before and after) and the temporary
    folder; ``var_dir`` keeps SQLite's database for the next run instead. ``extra_env``
    (e.g. REDIS_URL) is set in the child's environment.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env |= extra_env or {}
    with tempfile.TemporaryDirectory(prefix=f"{name}-") as folder:
        env["REPLYHUB_VAR_DIR"] = var_dir or folder
        if database == "postgres":
            env["DATABASE_URL"] = PG_SERVER + name
            _postgres(f"DROP DATABASE IF EXISTS {name}")
            _postgres(f"CREATE DATABASE {name}")
        try:
            reuse = ["--var-dir", var_dir] if var_dir else []
            output = subprocess.run(
                [sys.executable, script, "--child", *argv, *reuse],
                env=env,
                check=True,
                stdout=subprocess.PIPE,
                text=True,
            ).stdout
        finally:
            if database == "postgres":
                _postgres(f"DROP DATABASE IF EXISTS {name}")
    return json.loads(output.strip().splitlines()[-1])


def add_common_arguments(parser: argparse.ArgumentParser, requests: int) -> None:
    parser.add_argument("--requests", type=int, default=requests)
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument(
        "--var-dir",
        help="SQLite: keep the database in this folder and reuse it on the next run (seeded "
        "once; for measuring changes quickly) instead of a fresh temporary one",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)


def print_machine(script: str) -> None:
    print(f"\nMachine: {platform.node()}, {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.2f}")
    print(f"Command: .venv/bin/python bench/{script} {' '.join(sys.argv[1:])}".rstrip())


@dataclass(frozen=True)
class PageBench:
    """What one page benchmark is: how it seeds, what it measures, how it prints."""

    script: str  # the benchmark's __file__, run again as the child
    count: str  # what --count seeds: "drafts", "messages"
    default_requests: int
    database: str  # the PostgreSQL database made for the run
    model: str  # the drafts model counted to know what is already seeded: "Draft", "Message"
    seed: Callable[[int], None]
    measure: Callable[[int], list[dict]]
    header: str  # the Markdown table's header row
    row: Callable[[str, dict], str]  # a table row from (database, measured row)
    text_columns: int = 1  # left-aligned columns before the right-aligned figures


def main(bench: PageBench, doc: str) -> None:
    """The command line shared by the page benchmarks: parent and child."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument(f"--{bench.count}", type=int, default=100_000, dest="count")
    add_common_arguments(parser, requests=bench.default_requests)
    args = parser.parse_args()
    if args.child:

        def seeded() -> int:
            from django.apps import apps

            return apps.get_model("drafts", bench.model).objects.count()

        prepare(seeded, lambda: bench.seed(args.count), bench.count)
        print(json.dumps(bench.measure(args.requests)))
        return
    results = {}
    for database in args.databases.split(","):
        say(f"{database}: migrating and seeding {args.count:,} {bench.count}")
        argv = [f"--{bench.count}", str(args.count), "--requests", str(args.requests)]
        results[database] = run_child(bench.script, database, bench.database, argv, args.var_dir)
    print_machine(Path(bench.script).name)
    print(f"\n{bench.header}")
    columns = bench.header.count("|") - 1
    print("|" + " --- |" * bench.text_columns + " ---: |" * (columns - bench.text_columns))
    for database, rows in results.items():
        for r in rows:
            print(bench.row(database, r))

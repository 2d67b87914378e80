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
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = "postgres://postgres@127.0.0.1:5432/postgres"
PG_SERVER = "postgres://postgres@127.0.0.1:5432/"


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


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


def run_child(script: str, database: str, name: str, argv: list[str], var_dir: str | None):
    """Run ``script --child argv`` on a fresh ``database`` ("sqlite" or "postgres"); its rows.

    ``name`` names the PostgreSQL database (dropped before and after) and the temporary
    folder; ``var_dir`` keeps SQLite's database for the next run instead.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
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

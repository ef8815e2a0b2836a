"""A real PostgreSQL server for the tests, and a fresh database in it per test.

The server is the one `.ci/run` started (BACKFILLS_TEST_POSTGRES_URL), else a throwaway one this
process starts with scripts/throwaway-postgres (a cluster in a temp folder, stopped at the end).
Where PostgreSQL is not installed, the tests that need it are skipped and say why, unless
BACKFILLS_REQUIRE_POSTGRES=1 (set by .ci/run): then they fail.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg2
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "throwaway-postgres"
NOT_INSTALLED = 69  # the script's exit code when there is no PostgreSQL to start


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of a PostgreSQL server's `postgres` database."""
    given = os.environ.get("BACKFILLS_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    folder = tempfile.mkdtemp(prefix="backfills-pg-")  # under /tmp: the server's user can reach it
    started = subprocess.run([SCRIPT, "start", folder], capture_output=True, text=True, timeout=180)
    if started.returncode != 0:
        subprocess.run([SCRIPT, "stop", folder], capture_output=True, timeout=60)
        reason = started.stderr.strip().splitlines()[-1] if started.stderr.strip() else "no reason given"
        if os.environ.get("BACKFILLS_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required (BACKFILLS_REQUIRE_POSTGRES=1) but did not start: {reason}")
        if started.returncode == NOT_INSTALLED:
            pytest.skip(f"PostgreSQL tests skipped: {reason}; .ci/run installs it (Debian's postgresql)")
        pytest.fail(f"the throwaway PostgreSQL did not start: {reason}")
    try:
        yield started.stdout.strip()
    finally:
        subprocess.run([SCRIPT, "stop", folder], capture_output=True, timeout=60)


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A new, empty database for one test (dropped after it): its URL, password included."""
    name = f"backfills_{uuid.uuid4().hex[:12]}"
    with _admin(postgres_server) as con:
        con.cursor().execute(f"create database {name}")
    parts = urlsplit(postgres_server)
    yield urlunsplit(parts._replace(path=f"/{name}"))
    with _admin(postgres_server) as con:
        con.cursor().execute(f"drop database if exists {name} with (force)")


class _admin:
    """An autocommit connection (create and drop database refuse to run in a transaction)."""

    def __init__(self, url: str) -> None:
        self.con = psycopg2.connect(url)
        self.con.autocommit = True

    def __enter__(self) -> psycopg2.extensions.connection:
        return self.con

    def __exit__(self, *exc: object) -> None:
        self.con.close()

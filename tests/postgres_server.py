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
from dataclasses import dataclass
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


@dataclass
class Database:
    """A new database set up as docs/postgres.md says, with roles of its own."""

    admin: str  # a superuser's URL of it: for what no documented role may do
    loader: str  # backfills_loader's: the roles the pipeline runs as
    bi: str  # bi_reader's: what BI tools connect as


def readme_roles() -> str:
    """The SQL block of the documented PostgreSQL roles (docs/postgres.md), verbatim."""
    page = (ROOT / "docs" / "postgres.md").read_text()
    return page.split("```sql\n", 1)[1].split("```", 1)[0]


@pytest.fixture
def postgres_database(postgres_server: str) -> Iterator[Database]:
    """A new, empty database for one test, set up with the documented roles (dropped after it).

    The roles are docs/postgres.md's, renamed to be unique to the test (roles belong to the server)."""
    suffix = uuid.uuid4().hex[:12]
    name, loader, bi = f"backfills_{suffix}", f"loader_{suffix}", f"bi_{suffix}"
    with _admin(postgres_server) as con:
        con.cursor().execute(f"create database {name}")
    parts = urlsplit(postgres_server)
    admin = urlunsplit(parts._replace(path=f"/{name}"))
    setup = readme_roles().replace("backfills_loader", loader).replace("bi_reader", bi)
    setup = setup.replace(f"{loader} login password '...'", f"{loader} login password 'pw-{loader}'")
    setup = setup.replace(f"{bi} login password '...'", f"{bi} login password 'pw-{bi}'")
    with _admin(admin) as con:
        con.cursor().execute(setup)
    host = f"{parts.hostname}:{parts.port}"
    try:
        yield Database(
            admin,
            f"postgresql://{loader}:pw-{loader}@{host}/{name}",
            f"postgresql://{bi}:pw-{bi}@{host}/{name}",
        )
    finally:
        with _admin(postgres_server) as con:
            con.cursor().execute(f"drop database if exists {name} with (force)")
            con.cursor().execute(f"drop role if exists {loader}; drop role if exists {bi}")


@pytest.fixture
def postgres_url(postgres_database: Database) -> str:
    """The loader's URL (password included) of a new database set up as docs/postgres.md says."""
    return postgres_database.loader


class _admin:
    """An autocommit connection (create and drop database refuse to run in a transaction)."""

    def __init__(self, url: str) -> None:
        self.con = psycopg2.connect(url)
        self.con.autocommit = True

    def __enter__(self) -> psycopg2.extensions.connection:
        return self.con

    def __exit__(self, *exc: object) -> None:
        self.con.close()

"""Where the history lives: a DuckDB file (the default), a PostgreSQL database, or Parquet files.

`[backfills] destination = "postgres"` in .dlt/config.toml (or BACKFILLS_DESTINATION, or
`--destination`) switches every command to PostgreSQL; its credentials are dlt's own,
`[destination.postgres] credentials` in .dlt/secrets.toml or DESTINATION__POSTGRES__CREDENTIALS.
The password stays inside dlt's credentials object: messages name user, host, port and database.
`destination = "filesystem"` loads the raw history as Parquet into `[destination.filesystem]
bucket_url` (pipelines.lake); the models are then built by Spark (pipelines.spark), not here.

`Warehouse.connect()` gives a `Connection` with the same few calls on both engines, for the code
that reads and repairs the raw tables itself (settle, baseline, report, query). The models run
through dlt's SQL client, which already speaks both.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tomllib
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .supermetrics.errors import ConfigError, LockedError, MonitorError, StorageError, causes

ENGINES = ("duckdb", "postgres", "filesystem")
CONFIG_FILE = Path(".dlt/config.toml")


class Connection:
    """A DB-API connection of either engine, in autocommit unless inside `transaction()`.

    Queries use `%s` placeholders on both engines (as dlt's SQL clients do).
    """

    def __init__(self, raw: Any, engine: str) -> None:
        self.raw, self.engine = raw, engine
        # a physical row's address, to tell apart two copies of one row (pipelines.settle)
        self.row_id = "rowid" if engine == "duckdb" else "ctid"

    def _execute(self, sql: str, params: Sequence[Any]) -> Any:
        if self.engine == "duckdb":
            return self.raw.execute(sql.replace("%s", "?") if params else sql, list(params))
        cursor = self.raw.cursor()
        cursor.execute(sql, tuple(params) or None)
        return cursor

    def rows(self, sql: str, *params: Any) -> list[tuple]:
        return self._execute(sql, params).fetchall()

    def records(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        """The rows as dicts by column name."""
        cursor = self._execute(sql, params)
        columns = [d[0] for d in cursor.description]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]

    def result(self, sql: str) -> tuple[list[str], list[tuple]] | None:
        """(column names, rows) of one statement; None when it returns no rows (`backfills query`)."""
        cursor = self._execute(sql, ())
        if cursor is None or cursor.description is None:
            return None
        return [d[0] for d in cursor.description], cursor.fetchall()

    @property
    def errors(self) -> type[Exception]:
        """The engine's base class of database errors."""
        if self.engine == "duckdb":
            import duckdb

            return duckdb.Error
        import psycopg2

        return psycopg2.Error

    def run(self, sql: str, *params: Any) -> int:
        """Run a statement; returns the rows it changed (for insert, update and delete)."""
        cursor = self._execute(sql, params)
        if self.engine == "postgres":
            return max(cursor.rowcount, 0)
        row = cursor.fetchone() if cursor.description else None
        return int(row[0]) if row and isinstance(row[0], int) else 0

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self.run("begin transaction")
        try:
            yield
        except BaseException:
            self.run("rollback")
            raise
        self.run("commit")

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def configured_engine(option: str | None = None) -> str:
    """`--destination`, else BACKFILLS_DESTINATION, else `[backfills] destination` in the working
    directory's .dlt/config.toml (where dlt reads its config), else duckdb."""
    name = option or os.environ.get("BACKFILLS_DESTINATION")
    if not name and CONFIG_FILE.is_file():
        try:
            name = tomllib.loads(CONFIG_FILE.read_text()).get("backfills", {}).get("destination")
        except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {CONFIG_FILE}: {str(exc).splitlines()[0]}") from None
    name = (name or "duckdb").strip().lower()
    if name not in ENGINES:
        raise ConfigError(
            f"destination = {name!r} is not one of {', '.join(ENGINES)}: set [backfills] destination "
            "in .dlt/config.toml, BACKFILLS_DESTINATION or --destination"
        )
    return name


@dataclass(frozen=True)
class Warehouse:
    """The database of one deployment. On PostgreSQL and the filesystem `db_path` only places
    dlt's working folder (and, for the filesystem, the run lock)."""

    engine: str
    db_path: Path
    # PostgreSQL: dlt's credentials; the filesystem: dlt's FilesystemConfiguration of the bucket
    credentials: Any = field(default=None, compare=False)

    @property
    def is_duckdb(self) -> bool:
        return self.engine == "duckdb"

    @property
    def is_postgres(self) -> bool:
        return self.engine == "postgres"

    @property
    def is_lake(self) -> bool:
        return self.engine == "filesystem"

    @property
    def label(self) -> str:
        """What messages call the database: the file, user@host:port/database (no password), or
        the bucket's URL."""
        if self.is_duckdb:
            return str(self.db_path)
        if self.is_lake:  # without a user or password a URL may carry (sftp://user:pw@host)
            url = urlsplit(str(self.credentials.bucket_url))
            host = url.hostname or ""
            return urlunsplit(url._replace(netloc=host + (f":{url.port}" if url.port else "")))
        c = self.credentials
        return f"postgresql://{c.username}@{c.host}:{c.port}/{c.database}"

    def working_dir(self) -> Path:
        """dlt's local working folder belongs to one database: beside the DuckDB file, or in the
        --db folder named after the PostgreSQL database."""
        if self.is_duckdb:
            return self.db_path.parent / f".{self.db_path.name}.dlt"
        if self.is_lake:  # one per bucket: a short hash of its URL keeps names apart
            digest = zlib.crc32(str(self.credentials.bucket_url).encode())
            return self.db_path.parent / f".filesystem-{digest:08x}.dlt"
        c = self.credentials
        return self.db_path.parent / f".postgres-{c.host}-{c.port}-{c.database}.dlt"

    def dlt_destination(self) -> Any:
        import dlt

        if self.is_duckdb:
            return dlt.destinations.duckdb(str(self.db_path))
        if self.is_lake:
            # the bucket's credentials dlt resolves itself, from the same [destination.filesystem]
            return dlt.destinations.filesystem(bucket_url=self.credentials.bucket_url)
        return dlt.destinations.postgres(credentials=self.credentials)

    def connect(self, read_only: bool = False) -> Connection:
        if self.is_duckdb:
            from .database import connect

            return Connection(connect(self.db_path, read_only=read_only), "duckdb")
        if self.is_lake:
            raise ConfigError(
                f"destination is filesystem: {self.label} holds the raw history as Parquet, not the "
                "analytics tables this command reads; build them with `backfills models --engine spark` "
                "(docs/lake.md)"
            )
        return Connection(connect_postgres(self.credentials, read_only), "postgres")

    def lake(self) -> Any:
        """The bucket's dataset of raw tables (pipelines.lake)."""
        from .lake import open_lake
        from .supermetrics.settings import DATASET_NAME

        return open_lake(self.credentials, DATASET_NAME)

    def read_lake(self) -> Connection:
        """An in-memory DuckDB with the raw tables as views over the bucket's committed files:
        what a run of the filesystem destination reads its baseline from."""
        import duckdb

        from .lake import attach
        from .supermetrics.settings import DATASET_NAME

        con = duckdb.connect()
        attach(con, self.lake(), DATASET_NAME)
        return Connection(con, "duckdb")


def warehouse(db_path: Path, destination: str | None = None) -> Warehouse:
    """The configured warehouse; PostgreSQL credentials come from dlt's secrets."""
    engine = configured_engine(destination)
    if engine == "duckdb":
        return Warehouse("duckdb", Path(db_path))
    if engine == "filesystem":
        from .lake import bucket_config

        return Warehouse("filesystem", Path(db_path), bucket_config())
    return Warehouse("postgres", Path(db_path), postgres_credentials())


def postgres_credentials() -> Any:
    """dlt's credentials of `[destination.postgres]`; `ConfigError` naming where to set them."""
    import dlt
    from dlt.common.configuration import resolve_configuration
    from dlt.common.configuration.exceptions import ConfigurationException
    from dlt.destinations.impl.postgres.configuration import PostgresCredentials

    try:
        given = dlt.secrets.get("destination.postgres.credentials")
        if given is None:
            raise ConfigurationException("missing")
        return resolve_configuration(PostgresCredentials(), explicit_value=given)
    except (ConfigurationException, ValueError):
        raise ConfigError(
            "destination is postgres but its credentials are missing or incomplete: set "
            '[destination.postgres] credentials = "postgresql://user:password@host:5432/database" in '
            ".dlt/secrets.toml, or DESTINATION__POSTGRES__CREDENTIALS"
        ) from None


@contextlib.contextmanager
def database_errors(target: Warehouse) -> Iterator[None]:
    """On PostgreSQL, any error of the server (a lost connection, a missing privilege, a full
    disk), however deep inside dlt, comes out as a one-line `StorageError` (exit 74)."""
    try:
        yield
    except MonitorError:
        raise
    except Exception as exc:
        if not target.is_postgres or "psycopg2" not in sys.modules:
            raise
        import psycopg2

        cause = next((e for e in causes(exc) if isinstance(e, psycopg2.Error)), None)
        if cause is None:
            raise
        raise StorageError(f"PostgreSQL at {target.label} failed: {_first_line(cause)}") from None


def connect_postgres(credentials: Any, read_only: bool = False) -> Any:
    """A psycopg2 connection in autocommit; `StorageError` in one line when the server is down or
    refuses (without the password, which psycopg2's messages never carry)."""
    import psycopg2

    try:
        con = psycopg2.connect(credentials.to_native_representation(), connect_timeout=15)
    except psycopg2.OperationalError as exc:
        where = f"{credentials.host}:{credentials.port}/{credentials.database}"
        raise StorageError(f"cannot connect to PostgreSQL at {where}: {_first_line(exc)}") from None
    con.autocommit = True
    # numeric columns as floats, as DuckDB's doubles: the report and pandas need no Decimal
    decimal_as_float = psycopg2.extensions.new_type(
        psycopg2.extensions.DECIMAL.values,
        "DECIMAL_AS_FLOAT",
        lambda v, _cur: None if v is None else float(v),
    )
    psycopg2.extensions.register_type(decimal_as_float, con)
    if read_only:
        con.set_session(readonly=True, autocommit=True)
    return con


class AdvisoryLock:
    """`with AdvisoryLock(warehouse, wait_seconds):` one ingest at a time per PostgreSQL dataset,
    across machines: a session-level advisory lock, released by the server when the holder's
    connection ends (a killed run never leaves it stuck)."""

    def __init__(self, target: Warehouse, dataset: str, wait_seconds: float = 0.0) -> None:
        self.target, self.wait_seconds = target, wait_seconds
        self.key = zlib.crc32(f"backfills:{dataset}".encode())
        self._con: Connection | None = None

    def __enter__(self) -> AdvisoryLock:
        con = self.target.connect()
        try:
            # lock_timeout bounds the wait; 0 would mean forever, so no wait is a try-lock
            if self.wait_seconds:
                con.run(f"set lock_timeout = {int(self.wait_seconds * 1000)}")
                got = _try(con, "select pg_advisory_lock(%s) is not null", self.key)
            else:
                got = con.rows("select pg_try_advisory_lock(%s)", self.key)[0][0]
            if not got:
                holder = con.rows(
                    "select coalesce(max(coalesce(host(a.client_addr), 'local') || ' pid ' || a.pid), "
                    "'unknown') from pg_locks as l join pg_stat_activity as a using (pid) "
                    "where l.locktype = 'advisory' and l.objid::bigint = %s and l.granted",
                    self.key,
                )[0][0]
                raise LockedError(
                    f"another ingest ({holder}) is running on {self.target.label}: this run exits; "
                    "use --wait-lock SECONDS to wait for it instead"
                )
            con.run("set lock_timeout = 0")
        except BaseException:
            con.close()
            raise
        self._con = con
        return self

    def __exit__(self, *exc: object) -> None:
        if self._con is not None:
            with contextlib.suppress(Exception):  # closing the session releases it anyway
                self._con.run("select pg_advisory_unlock(%s)", self.key)
            self._con.close()
            self._con = None


def _try(con: Connection, sql: str, *params: Any) -> bool:
    import psycopg2

    try:
        return bool(con.rows(sql, *params)[0][0])
    except psycopg2.errors.LockNotAvailable:
        return False


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__

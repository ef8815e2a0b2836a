"""PostgreSQL: `[backfills] destination = "postgres"`, credentials are dlt's own
(`[destination.postgres] credentials` in .dlt/secrets.toml or DESTINATION__POSTGRES__CREDENTIALS).
The password stays inside dlt's credentials object: messages name user, host, port and database.

An advisory lock in the database keeps runs apart, across machines too. Nothing is published:
readers never block a writer, and a build replaces a table's rows (delete and insert, in the
build's transaction) rather than the table, so that BI tools read the analytics schema itself.
"""

from __future__ import annotations

import contextlib
import sys
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..supermetrics.errors import ConfigError, LockedError, MonitorError, StorageError, causes
from ..supermetrics.settings import DATASET_NAME
from .base import Connection, Warehouse


class PostgresConnection(Connection):
    engine = "postgres"
    row_id = "ctid"

    def _execute(self, sql: str, params: Sequence[Any]) -> Any:
        cursor = self.raw.cursor()
        cursor.execute(sql, tuple(params) or None)
        return cursor

    def run(self, sql: str, *params: Any) -> int:
        return max(self._execute(sql, params).rowcount, 0)

    @property
    def errors(self) -> type[Exception]:
        import psycopg2

        return psycopg2.Error


class PostgresWarehouse(Warehouse, name="postgres"):
    @classmethod
    def configured_credentials(cls) -> Any:
        return postgres_credentials()

    @property
    def label(self) -> str:
        c = self.credentials
        return f"postgresql://{c.username}@{c.host}:{c.port}/{c.database}"

    def working_dir(self) -> Path:
        c = self.credentials
        return self.db_path.parent / f".postgres-{c.host}-{c.port}-{c.database}.dlt"

    def dlt_destination(self) -> Any:
        import dlt

        return dlt.destinations.postgres(credentials=self.credentials)

    def connect(self, read_only: bool = False) -> Connection:
        return PostgresConnection(connect_postgres(self.credentials, read_only))

    @contextlib.contextmanager
    def session(self, started: float, wait_lock: float) -> Iterator[Connection]:
        with AdvisoryLock(self, DATASET_NAME, wait_lock), self.connect() as con:
            yield con

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """Any error of the server (a lost connection, a missing privilege, a full disk), however
        deep inside dlt, comes out as a one-line `StorageError` (exit 74)."""
        try:
            yield
        except MonitorError:
            raise
        except Exception as exc:
            if "psycopg2" not in sys.modules:
                raise
            import psycopg2

            cause = next((e for e in causes(exc) if isinstance(e, psycopg2.Error)), None)
            if cause is None:
                raise
            raise StorageError(f"PostgreSQL at {self.label} failed: {_first_line(cause)}") from None

    def temp_relation(self, name: str) -> str:
        return f"pg_temp.{name}"

    def create_table(self, client: Any, relation: str, sql: str) -> None:
        schema, name = relation.split(".")
        client.execute_sql(f"drop table if exists {relation}")
        kind, target = ("temp table", name) if schema == "pg_temp" else ("table", relation)
        client.execute_sql(f"create {kind} {target} as\n{sql}")

    def replace_table(self, client: Any, relation: str, sql: str) -> None:
        """The rows are replaced while the table stays: a BI reader's query never blocks the build."""
        from ..incremental import table_exists

        if not table_exists(client, relation) or _columns(client, relation) != _columns_of_query(client, sql):
            self.create_table(client, relation, sql)  # new, or the model's columns changed
            return
        client.execute_sql(f"delete from {relation}")
        client.execute_sql(f"insert into {relation}\n{sql}")

    def replace_view(self, client: Any, relation: str, sql: str) -> None:
        """Made anew: `or replace` cannot rename or retype a column."""
        client.execute_sql(f"drop view if exists {relation}")
        client.execute_sql(f"create view {relation} as\n{sql}")


def _columns(client: Any, relation: str) -> list[tuple[str, str]]:
    schema, name = relation.split(".")
    return [
        tuple(row)
        for row in client.execute_sql(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = %s and table_name = %s order by ordinal_position",
            schema,
            name,
        )
    ]


def _columns_of_query(client: Any, sql: str) -> list[tuple[str, str]]:
    """The columns `sql` returns, from a table of none of its rows (`with no data` plans the query
    without running it)."""
    client.execute_sql("drop table if exists pg_temp.model_columns")
    client.execute_sql(f"create temp table model_columns as\n{sql}\nwith no data")
    temp_schema = client.execute_sql("select nspname from pg_namespace where oid = pg_my_temp_schema()")[0][0]
    return _columns(client, f"{temp_schema}.model_columns")


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
    """`with AdvisoryLock(warehouse, dataset, wait_seconds):` one ingest at a time per PostgreSQL
    dataset, across machines: a session-level advisory lock, released by the server when the
    holder's connection ends (a killed run never leaves it stuck)."""

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

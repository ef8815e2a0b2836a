"""What every engine provides: the base class of the three, and the connection they hand out.

A `Warehouse` is one deployment's database on one engine. The orchestration (pipelines.ingest,
pipelines.models, the CLI) calls only what is declared here; each engine's module says how it
does it. What an engine cannot do it refuses through `require`, with the message users see.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..supermetrics.errors import ConfigError, MonitorError
from ..supermetrics.settings import DATASET_NAME

ENGINES: dict[str, type[Warehouse]] = {}  # name -> class, filled as each engine's module loads


class Connection:
    """A DB-API connection in autocommit unless inside `transaction()`, with the same few calls on
    every engine. Queries use `%s` placeholders everywhere (as dlt's SQL clients do)."""

    engine: ClassVar[str]
    row_id: ClassVar[str]  # a physical row's address, to tell apart two copies of one row (settle)

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def _execute(self, sql: str, params: Sequence[Any]) -> Any:
        raise NotImplementedError

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

    def frame(self, sql: str) -> Any:
        """The rows as a pandas DataFrame, timestamps with time zone as one UTC dtype."""
        import pandas as pd

        columns, rows = self.result(sql) or ([], [])
        frame = pd.DataFrame(rows, columns=columns)
        for column in frame.columns:
            if frame[column].map(lambda v: hasattr(v, "tzinfo") and hasattr(v, "hour")).any():
                frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame

    @property
    def errors(self) -> type[Exception]:
        """The engine's base class of database errors."""
        raise NotImplementedError

    def run(self, sql: str, *params: Any) -> int:
        """Run a statement; returns the rows it changed (for insert, update and delete)."""
        raise NotImplementedError

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


@dataclass(frozen=True)
class Warehouse:
    """The database of one deployment. `Warehouse("postgres", db_path, credentials)` makes the
    named engine's; `db_path` is the DuckDB file, else only where dlt's working folder goes."""

    engine: str
    db_path: Path
    # PostgreSQL: dlt's credentials; the filesystem: dlt's FilesystemConfiguration of the bucket
    credentials: Any = field(default=None, compare=False)

    # What the engine does, and what it refuses (capability -> the message users see)
    loader_file_format: ClassVar[str] = "insert_values"
    table_format: ClassVar[str | None] = None  # dlt's table_format of the raw tables (delta)
    builds_in_run: ClassVar[bool] = True  # the run builds the SQL models (else Spark does)

    def __init_subclass__(cls, name: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if name:
            ENGINES[name] = cls

    def __new__(cls, *args: Any, **kwargs: Any) -> Warehouse:
        if cls is Warehouse:
            name = args[0] if args else kwargs["engine"]
            if name not in ENGINES:
                raise ConfigError(f"destination = {name!r} is not one of {', '.join(ENGINES)}")
            cls = ENGINES[name]
        return super().__new__(cls)

    @classmethod
    def configured_credentials(cls) -> Any:
        """What the engine connects with, from dlt's config and secrets; `ConfigError` if missing."""
        return None

    def refusals(self) -> dict[str, str]:
        """What this engine cannot do: `alerts`, `sql_models`, `read` (report, check, query),
        `spark`, each with the reason to show."""
        return {
            "spark": "the Spark build reads the Delta tables of destination filesystem, and the "
            f'destination is {self.engine}: set [backfills] destination = "filesystem" (docs/lake.md)',
            "compact": f"compact is for the Delta tables of destination filesystem; the destination is "
            f"{self.engine}, which keeps its own storage compact",
        }

    def require(self, capability: str) -> None:
        """`ConfigError` with the engine's reason when it cannot do `capability`."""
        reason = self.refusals().get(capability)
        if reason:
            raise ConfigError(reason)

    # -- where and how dlt loads
    @property
    def label(self) -> str:
        """What messages call the database (never with a password)."""
        raise NotImplementedError

    def working_dir(self) -> Path:
        """dlt's local working folder, one per database."""
        raise NotImplementedError

    def dlt_destination(self) -> Any:
        raise NotImplementedError

    def for_dlt(self) -> Warehouse:
        """The warehouse as dlt's pipeline is opened for (one pipeline per database and process)."""
        return self

    def prepare(self) -> None:
        """Before a run: check and create what the run writes to."""

    def require_existing(self, hint: str = "run backfills ingest first") -> None:
        """`ConfigError` when there is no database to read yet."""

    # -- the run
    def connect(self, read_only: bool = False) -> Connection:
        raise NotImplementedError

    @contextlib.contextmanager
    def session(self, started: float, wait_lock: float) -> Iterator[Connection]:
        """The run lock (one run per database at a time) and a connection held for the run."""
        raise NotImplementedError
        yield  # pragma: no cover

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """Any failure of the engine itself comes out as a one-line `MonitorError`."""
        yield

    def known_error(self, exc: BaseException) -> MonitorError | None:
        """The `MonitorError` a library's failure means on this engine (a locked file), if any."""
        return None

    def expose_raw(self, con: Connection) -> None:
        """Make the raw tables readable on `con`, as of the loads completed by now."""

    def settle(self, con: Connection, reloaded: list[str] | None = None) -> list[str]:
        """Make every completed load count once (pipelines.settle); what to say about it."""
        from ..settle import settle

        settled = settle(con, DATASET_NAME, reloaded)
        return [settled.describe()] if settled.removed else []

    def reloading(self, load_ids: list[str]) -> None:
        """Before dlt loads again the packages an earlier run left pending: what the engine must
        remember, should this run stop before they are settled."""

    def upgrade_storage(self) -> list[str]:
        """Once what earlier runs left is loaded: bring what an older release stored to this
        release's format (dlt's schema evolution does it in a database); what to say about it."""
        return []

    def maintain(self) -> list[str]:
        """After the run's load: keep the storage's cost flat; what to say about it."""
        return []

    def compact(self, wait_lock: float, retention_hours: int | None = None) -> list[str]:
        """`backfills compact`: compact the storage now, under the run lock; a line per table."""
        self.require("compact")
        raise AssertionError("unreachable")

    def discard(self, load_ids: list[str]) -> int:
        """Remove the rows of loads that will never complete; returns how many."""
        from ..settle import discard

        with self.connect() as con:  # nothing half-loaded stays behind; a completed load stays
            if "_dlt_loads" in {t for (t,) in con.rows(_TABLES, DATASET_NAME)}:
                completed = con.rows(f"select load_id from {DATASET_NAME}._dlt_loads")
                load_ids = sorted(set(load_ids) - {load_id for (load_id,) in completed})
            return discard(con, DATASET_NAME, load_ids)

    def publish(self, scopes: dict[str, str]) -> Any:
        """Give readers what the build made (a PublishResult), or None: they read it in place."""
        return None

    def reader(self) -> Warehouse:
        """What report, check, query and the notebook open: the database, or a copy of it."""
        self.require("read")
        return self

    # -- what a model build needs (pipelines.models, pipelines.incremental)
    def build_settings(self, full_refresh: bool) -> list[str]:
        """Statements before a build, and for a full refresh."""
        return []

    def temp_relation(self, name: str) -> str:
        """The name of a temporary table of this build's session."""
        raise NotImplementedError

    def create_table(self, client: Any, relation: str, sql: str) -> None:
        """Make `relation` (perhaps a `temp_relation`) anew from `sql`."""
        raise NotImplementedError

    def replace_table(self, client: Any, relation: str, sql: str) -> None:
        """Make `relation` hold what `sql` returns, inside the build's transaction."""
        self.create_table(client, relation, sql)

    def replace_view(self, client: Any, relation: str, sql: str) -> None:
        """Make the view `relation` anew; a build calls it only when the models changed or the view
        is missing (on PostgreSQL, any change to a view waits for its readers)."""
        client.execute_sql(f"create or replace view {relation} as\n{sql}")

    def clustered(self, sql: str, keys: tuple[str, ...]) -> str:
        """`sql` with its rows in the order that lets this engine skip storage when a build reads
        one scope's rows (a full refresh writes a scoped table so); as it is where nothing skips."""
        return sql


_TABLES = "select table_name from information_schema.tables where table_schema = %s"

"""DuckDB: one file, the default. A lock file beside it keeps runs apart, dlt's working folder
sits beside it, and every build is published as a copy that readers open (pipelines.publish),
so that a BI tool never holds the file a run writes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..supermetrics.errors import ConfigError, MonitorError, StorageError
from ..supermetrics.settings import DATASET_NAME, DUCKDB_MEMORY_LIMIT
from .base import Connection, Warehouse

RESERVED_DB_NAMES = (DATASET_NAME, "analytics", "staging", "main")


class DuckDBConnection(Connection):
    engine = "duckdb"
    row_id = "rowid"

    def _execute(self, sql: str, params: Sequence[Any]) -> Any:
        return self.raw.execute(sql.replace("%s", "?") if params else sql, list(params))

    def run(self, sql: str, *params: Any) -> int:
        cursor = self._execute(sql, params)
        row = cursor.fetchone() if cursor.description else None
        return int(row[0]) if row and isinstance(row[0], int) else 0

    def frame(self, sql: str) -> Any:
        return self.raw.execute(sql).df()

    @property
    def errors(self) -> type[Exception]:
        import duckdb

        return duckdb.Error


class DuckDBWarehouse(Warehouse, name="duckdb"):
    @property
    def label(self) -> str:
        return str(self.db_path)

    def working_dir(self) -> Path:
        return self.db_path.parent / f".{self.db_path.name}.dlt"

    def dlt_destination(self) -> Any:
        import dlt

        return dlt.destinations.duckdb(str(self.db_path))

    def for_dlt(self) -> Warehouse:
        return DuckDBWarehouse("duckdb", self.db_path.resolve())

    def prepare(self) -> None:
        """Check the database file's name and create its folder."""
        db_path = self.db_path
        if db_path.stem.endswith("-live"):
            raise ConfigError(
                f"the database file may not be named {db_path.name}: names ending in -live are kept for "
                "the views published beside each database; choose another name"
            )
        if db_path.stem in RESERVED_DB_NAMES:
            raise ConfigError(
                f"the database file may not be named {db_path.name}: its name would clash with the "
                f"schema {db_path.stem!r} inside it; choose another name"
            )
        try:
            db_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create the database's folder {db_path.parent} ({exc.strerror}): "
                "choose a writable place with --db or BACKFILLS_DB"
            ) from None

    def require_existing(self, hint: str = "run backfills ingest first") -> None:
        if not self.db_path.exists():
            raise ConfigError(f"there is no database at {self.db_path}: {hint}")

    def connect(self, read_only: bool = False) -> Connection:
        from ..database import connect

        return DuckDBConnection(connect(self.db_path, read_only=read_only))

    @contextlib.contextmanager
    def session(self, started: float, wait_lock: float) -> Iterator[Connection]:
        """The lock file, and a connection held open so that every other open of the file in this
        process (dlt's, the build's, the publish's) reuses DuckDB's open instance instead of
        reading the file anew and checkpointing."""
        from ..database import limit_memory, wait_for_database
        from ..lock import RunLock

        with RunLock(self.db_path, wait_lock):
            if wait_lock:  # else the first open says LockedError itself: no extra open per run
                wait_for_database(self.db_path, started + wait_lock)
            with self.connect() as con:
                limit_memory(con.raw, memory_limit())
                yield con

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """A locked file or too little memory, when DuckDB says so, comes out as its one line."""
        import duckdb

        try:
            yield
        except duckdb.Error as exc:
            known = self.known_error(exc)
            if known is not None:
                raise known from None
            raise

    def known_error(self, exc: BaseException) -> MonitorError | None:
        from ..database import LOCK_MESSAGE, locked
        from ..supermetrics.errors import causes

        said = " | ".join(str(e) for e in causes(exc))
        if LOCK_MESSAGE.search(said):
            return locked(self.db_path)
        if "Out of Memory Error" in said:
            return ConfigError(
                f"DuckDB needed more than the run's memory_limit ({memory_limit()}) for {self.db_path}: "
                "raise [duckdb] memory_limit in .dlt/config.toml or DUCKDB__MEMORY_LIMIT; "
                "nothing stored was lost"
            )
        return None

    def publish(self, scopes: dict[str, str]) -> Any:
        import duckdb

        from ..publish import publish, published_dir
        from ..supermetrics.errors import PublishError

        try:
            return publish(self.db_path, scopes, memory_limit())
        except (OSError, duckdb.Error) as exc:
            raise PublishError(
                f"could not write the copy for BI tools in {published_dir(self.db_path)}: "
                f"{str(exc).splitlines()[0]}"
            ) from None

    def reader(self) -> Warehouse:
        """The copy published for BI tools when there is one (it never blocks a run), else the file."""
        from ..publish import published_db

        copy = published_db(self.db_path)
        if copy.exists():
            return DuckDBWarehouse("duckdb", copy)
        self.require_existing()
        return self

    def build_settings(self, full_refresh: bool) -> list[str]:
        from ..database import BUILD_SETTINGS

        # a full refresh may use DuckDB's own default memory, not a run's cap
        return [*BUILD_SETTINGS, *(["reset memory_limit"] if full_refresh else [])]

    def temp_relation(self, name: str) -> str:
        return f"temp.{name}"

    def create_table(self, client: Any, relation: str, sql: str) -> None:
        schema, name = relation.split(".")
        kind, target = ("temp table", name) if schema == "temp" else ("table", relation)
        client.execute_sql(f"create or replace {kind} {target} as\n{sql}")

    def clustered(self, sql: str, keys: tuple[str, ...]) -> str:
        """Rows in key order: each row group's min and max (its zone map) then cover few backfills
        or polls, and a scan filtered by a build's scope skips the others. A window's output is in
        hash-partition order, where every row group spans every backfill."""
        return f"select * from (\n{sql}\n) as clustered order by {', '.join(keys)}"


def memory_limit() -> str:
    """DuckDB's memory for a run: `[duckdb] memory_limit` or DUCKDB__MEMORY_LIMIT."""
    import dlt

    return str(dlt.config.get("duckdb.memory_limit") or DUCKDB_MEMORY_LIMIT)

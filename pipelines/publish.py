"""Publish the `analytics` tables for BI tools, so that readers never block the next ingest.

DuckDB allows one writer or many readers per file: a dashboard holding the ingest database open
would make the next scheduled run fail. So after each build the analytics tables are copied to
`published/` beside the database:

- `published/<name>.duckdb`: the tables, as one consistent snapshot. The previous copy is copied
  aside, brought up to date there, then moved over the old one in one `os.replace`. A reader
  that has the old file open keeps reading it; the next connection sees the new one. Ingest
  never opens this file, so a reader can never lock ingest out.
- `published/<name>/<table>.parquet`: one file per table, each replaced the same way; the tables
  that grow with every poll (`polls`, `backfill_progress`) are folders of one file per UTC day,
  `published/<name>/<table>/<YYYY-MM-DD>.parquet`, plus `_empty.parquet` (no rows: the schema,
  so that the folder is never empty). Every database publishes into its own folder, so that
  two databases beside each other never mix.
- `published/<name>-live.duckdb`: only views over those Parquet files. A view reads its files at
  each query, so a tool that keeps its connection open (a pool) still sees every publish.

What a publish costs does not grow with the history: the rows of a table that grows by poll
are appended (those of polls after the copy's newest) and only the days they fall on are
rewritten; the other tables are small and copied whole. After a full refresh of the models
(which may change old rows) everything is published again.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import duckdb

SCHEMA = "analytics"
EMPTY_FILE = "_empty.parquet"  # a by-day folder's schema, so that a glob over it always matches
SCRATCH = ".publishing"  # day files are written here, then moved into place


@dataclass
class PublishResult:
    duckdb_path: Path
    parquet_dir: Path
    live_path: Path
    tables: list[str]
    seconds: float
    full: bool = True


def published_dir(db_path: Path) -> Path:
    return db_path.parent / "published"


def published_db(db_path: Path) -> Path:
    return published_dir(db_path) / db_path.name


def published_parquet_dir(db_path: Path) -> Path:
    """This database's tables as Parquet: `published/<db file name without .duckdb>/`."""
    return published_dir(db_path) / db_path.stem


def published_live_db(db_path: Path) -> Path:
    """Views over this database's Parquet files, for tools that pool their connections."""
    return published_dir(db_path) / f"{db_path.stem}-live.duckdb"


def unpublish(db_path: Path) -> None:
    """Remove this database's published copy, and nothing another database published."""
    published_db(db_path).unlink(missing_ok=True)
    published_live_db(db_path).unlink(missing_ok=True)
    shutil.rmtree(published_parquet_dir(db_path), ignore_errors=True)


def _sql_path(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def publish(db_path: Path, by_poll: Collection[str] = ()) -> PublishResult:
    """Bring the published DuckDB file and Parquet files of `db_path` up to date.

    `by_poll`: the tables whose rows are per poll and never change once written (their rows of
    newer polls are appended). The caller holds the ingest lock: nothing else writes meanwhile.
    """
    started = time.monotonic()
    target, parquet_dir = published_db(db_path), published_parquet_dir(db_path)
    parquet_dir.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.tmp")
    for leftover in (staging, staging.with_name(staging.name + ".wal")):
        leftover.unlink(missing_ok=True)  # from a run killed while publishing
    if target.exists():
        shutil.copyfile(target, staging)  # the old snapshot, brought up to date below
    shutil.rmtree(parquet_dir / SCRATCH, ignore_errors=True)
    replacements: list[tuple[Path, Path]] = []
    with duckdb.connect(str(db_path)) as con:
        tables = [
            t
            for (t,) in con.execute(
                "select table_name from information_schema.tables where table_schema = ? order by 1", [SCHEMA]
            ).fetchall()
        ]
        try:
            con.execute(f"attach {_sql_path(staging)} as published")
        except duckdb.Error:  # an old copy this DuckDB cannot open: start a new one
            staging.unlink(missing_ok=True)
            con.execute(f"attach {_sql_path(staging)} as published")
        con.execute(f"create schema if not exists published.{SCHEMA}")
        full = _needs_everything(con)
        for table in tables:
            if table in by_poll:
                replacements += _publish_by_poll(con, table, parquet_dir, full)
            else:
                con.execute(
                    f"create or replace table published.{SCHEMA}.{table} as select * from {SCHEMA}.{table}"
                )
                replacements.append(
                    _write_parquet(con, f"select * from {SCHEMA}.{table}", parquet_dir / f"{table}.parquet")
                )
        for (gone,) in con.execute(
            "select table_name from information_schema.tables where table_catalog = 'published' "
            "and table_schema = ?",
            [SCHEMA],
        ).fetchall():
            if gone not in tables:
                con.execute(f"drop table published.{SCHEMA}.{gone}")
        con.execute("detach published")
    # the Parquet files first: the copy records what is published, and a publish killed before
    # the copy moved is redone whole by the next one
    for source, destination in replacements:
        os.replace(source, destination)
    os.replace(staging, target)
    shutil.rmtree(parquet_dir / SCRATCH, ignore_errors=True)
    live = _publish_views(published_live_db(db_path), parquet_dir, tables, by_poll)
    return PublishResult(target, parquet_dir, live, tables, time.monotonic() - started, full)


def _needs_everything(con: duckdb.DuckDBPyConnection) -> bool:
    """A first publish, or a full refresh of the models since the last one (old rows may differ)."""
    published = con.execute(
        "select count(*) from information_schema.tables where table_catalog = 'published' "
        "and table_schema = ? and table_name = 'model_builds'",
        [SCHEMA],
    ).fetchone()[0]
    if not published:
        return True
    return con.execute(
        f"select count(*) > 0 from {SCHEMA}.model_builds where outcome = 'ok' and mode is distinct from "
        f"'incremental' and finished_at > (select coalesce(max(finished_at), '-infinity'::timestamptz) "
        f"from published.{SCHEMA}.model_builds)"
    ).fetchone()[0]


def _publish_by_poll(
    con: duckdb.DuckDBPyConnection, table: str, parquet_dir: Path, full: bool
) -> list[tuple[Path, Path]]:
    """Append the rows of polls after the copy's newest; rewrite the days they fall on."""
    folder = parquet_dir / table
    folder.mkdir(exist_ok=True)
    (parquet_dir / f"{table}.parquet").unlink(missing_ok=True)  # the layout before by-day folders
    source, copy = f"{SCHEMA}.{table}", f"published.{SCHEMA}.{table}"
    if full or not _same_columns(con, table):
        con.execute(f"create or replace table {copy} as select * from {source}")
        since = 0
    else:
        since = con.execute(f"select coalesce(max(poll_id), 0) from {copy}").fetchone()[0]
        con.execute(f"insert into {copy} select * from {source} where poll_id > {since}")
    replacements = [_write_parquet(con, f"select * from {source} limit 0", folder / EMPTY_FILE)]
    first_day = con.execute(
        f"select min(cast(timezone('UTC', polled_at) as date)) from {source} where poll_id > {since}"
    ).fetchone()[0]
    if first_day is not None:  # the days from the first new row's on, whole, one file each
        scratch = parquet_dir / SCRATCH / table
        scratch.parent.mkdir(exist_ok=True)
        con.execute(
            f"copy (select *, strftime(timezone('UTC', polled_at), '%Y-%m-%d') as day from {source} "
            f"where polled_at >= '{first_day.isoformat()} 00:00:00+00'::timestamptz) "
            f"to {_sql_path(scratch)} (format parquet, partition_by (day))"
        )
        for part in sorted(scratch.glob("day=*")):
            [written] = part.glob("*.parquet")
            replacements.append((written, folder / f"{part.name.removeprefix('day=')}.parquet"))
    if full:  # days that hold no rows any more
        for stale in set(folder.glob("[0-9]*.parquet")) - {final for _, final in replacements}:
            stale.unlink()
    return replacements


def _same_columns(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    columns = (
        "select column_name, data_type from information_schema.columns "
        "where table_catalog = ? and table_schema = ? and table_name = ? order by ordinal_position"
    )
    ours = con.execute(columns, [_catalog(con), SCHEMA, table]).fetchall()
    theirs = con.execute(columns, ["published", SCHEMA, table]).fetchall()
    return ours == theirs


def _catalog(con: duckdb.DuckDBPyConnection) -> str:
    return con.execute("select current_database()").fetchone()[0]


def _write_parquet(con: duckdb.DuckDBPyConnection, query: str, path: Path) -> tuple[Path, Path]:
    """Write `query` beside `path`; returns (written, final) for the move into place."""
    written = path.with_name(f".{path.name}.tmp")
    con.execute(f"copy ({query}) to {_sql_path(written)} (format parquet)")
    return written, path


def _publish_views(live: Path, parquet_dir: Path, tables: list[str], by_poll: Collection[str]) -> Path:
    """The views file, written aside and moved into place like the others. Absolute paths: a BI
    tool's working directory is anyone's guess."""
    views = {
        table: f"SELECT * FROM read_parquet({_sql_path(_parquet_files(parquet_dir, table, by_poll))})"
        for table in tables
    }
    # as DuckDB renders them back; a DuckDB that renders them otherwise only costs a rewrite
    if _views_in(live) == views:  # the usual run: same tables, same files (views read them anew)
        return live
    staging = live.with_name(f".{live.name}.tmp")
    for leftover in (staging, staging.with_name(staging.name + ".wal")):
        leftover.unlink(missing_ok=True)
    with duckdb.connect(str(staging)) as con:
        con.execute(f"create schema {SCHEMA}")
        for table, query in views.items():
            con.execute(f"create view {SCHEMA}.{table} as {query}")
    os.replace(staging, live)
    return live


def _parquet_files(parquet_dir: Path, table: str, by_poll: Collection[str]) -> Path:
    if table in by_poll:
        return parquet_dir.resolve() / table / "*.parquet"
    return (parquet_dir / f"{table}.parquet").resolve()


def _views_in(live: Path) -> dict[str, str] | None:
    """The views file's views as {table: query}, None when it cannot be read. Creating the file
    anew costs more than the rest of a small publish: each view reads its files' schema."""
    if not live.exists():
        return None
    try:
        with duckdb.connect(str(live), read_only=True) as con:
            rows = con.execute(
                "select view_name, sql from duckdb_views() where schema_name = ? and not internal", [SCHEMA]
            ).fetchall()
    except duckdb.Error:
        return None
    prefix = f"CREATE VIEW {SCHEMA}."
    return {name: sql.removeprefix(f"{prefix}{name} AS ").rstrip(";") for name, sql in rows}

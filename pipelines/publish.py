"""Publish the `analytics` tables for BI tools, so that readers never block the next ingest.

DuckDB allows one writer or many readers per file: a dashboard holding the ingest database open
would make the next scheduled run fail. So after each build the analytics tables are copied to
`published/` beside the database:

- `published/<name>.duckdb`: written under a temporary name, then moved over the old copy in one
  `os.replace`. A reader that has the old file open keeps reading it; the next connection sees
  the new one. Ingest never opens this file, so a reader can never lock ingest out.
- `published/<name>/<table>.parquet`: one file per table, each replaced the same way. Every
  database publishes into its own folder, so that two databases beside each other never mix.
- `published/<name>-live.duckdb`: only views over those Parquet files. A view reads its file at
  each query, so a tool that keeps its connection open (a pool) still sees every publish.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

SCHEMA = "analytics"


@dataclass
class PublishResult:
    duckdb_path: Path
    parquet_dir: Path
    live_path: Path
    tables: list[str]
    seconds: float


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


def publish(db_path: Path) -> PublishResult:
    """Copy every analytics table of `db_path` to the published DuckDB file and Parquet files.

    The caller holds the ingest lock: nothing else writes `db_path` meanwhile.
    """
    started = time.monotonic()
    target, parquet_dir = published_db(db_path), published_parquet_dir(db_path)
    parquet_dir.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.tmp")
    for leftover in (staging, staging.with_name(staging.name + ".wal")):
        leftover.unlink(missing_ok=True)  # from a run killed while publishing
    replacements: list[tuple[Path, Path]] = []
    with duckdb.connect(str(db_path)) as con:
        tables = [
            t
            for (t,) in con.execute(
                "select table_name from information_schema.tables where table_schema = ? order by 1", [SCHEMA]
            ).fetchall()
        ]
        con.execute(f"attach {_sql_path(staging)} as published")
        con.execute(f"create schema published.{SCHEMA}")
        for table in tables:
            con.execute(f"create table published.{SCHEMA}.{table} as select * from {SCHEMA}.{table}")
            parquet = parquet_dir / f"{table}.parquet"
            parquet_staging = parquet.with_name(f".{parquet.name}.tmp")
            con.execute(f"copy {SCHEMA}.{table} to {_sql_path(parquet_staging)} (format parquet)")
            replacements.append((parquet_staging, parquet))
        con.execute("detach published")
    os.replace(staging, target)
    for source, destination in replacements:
        os.replace(source, destination)
    live = _publish_views(published_live_db(db_path), parquet_dir, tables)
    return PublishResult(target, parquet_dir, live, tables, time.monotonic() - started)


def _publish_views(live: Path, parquet_dir: Path, tables: list[str]) -> Path:
    """The views file, written aside and moved into place like the others. Absolute paths: a BI
    tool's working directory is anyone's guess."""
    staging = live.with_name(f".{live.name}.tmp")
    for leftover in (staging, staging.with_name(staging.name + ".wal")):
        leftover.unlink(missing_ok=True)
    with duckdb.connect(str(staging)) as con:
        con.execute(f"create schema {SCHEMA}")
        for table in tables:
            parquet = (parquet_dir / f"{table}.parquet").resolve()
            con.execute(f"create view {SCHEMA}.{table} as select * from read_parquet({_sql_path(parquet)})")
    os.replace(staging, live)
    return live

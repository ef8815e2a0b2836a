"""Publish the `analytics` tables for BI tools, so that readers never block the next ingest.

DuckDB allows one writer or many readers per file: a dashboard holding the ingest database open
would make the next scheduled run fail. So after each build the analytics tables are copied to
`published/` beside the database:

- `published/<name>.duckdb`: the tables, as one consistent snapshot. It is one of two copies,
  `published/.<name>.1.duckdb` and `.2.duckdb`, in turn: each publish brings the other copy up to
  date (in one transaction) and then renames a hard link of it over `<name>.duckdb`. A reader
  that has the old file open keeps reading it; the next connection sees the new one. Ingest
  never opens the file readers were given, so a reader can never lock ingest out; a reader that
  still holds a copy two publishes later (a pooled connection) only makes that publish start
  the copy anew from the published file.
- `published/<name>/<table>.parquet`: one file per table, each replaced the same way; the tables
  that grow with every poll (`polls`, `backfill_progress`) are folders of one file per UTC day,
  `published/<name>/<table>/<YYYY-MM-DD>.parquet`, plus `_empty.parquet` (no rows: the schema,
  so that the folder is never empty). Every database publishes into its own folder, so that
  two databases beside each other never mix.
- `published/<name>-live.duckdb`: only views over those Parquet files. A view reads its files at
  each query, so a tool that keeps its connection open (a pool) still sees every publish.

What a publish costs follows what the builds since the spare copy's last publish wrote (each
build records its tables in analytics.model_builds and its backfills in
`incremental.SCOPE_LOG`), not the history: the rows of a table that grows by poll are appended
(those of polls after the copy's newest) and only the days they fall on are rewritten; in a
table built by backfill the rows of the backfills rewritten since are replaced; the other
tables a build wrote are small and copied whole, those none wrote are left alone. After a
full refresh of the models (which may change old rows), or when the copy is further behind
than the builds remembered, everything is published again; the publish after that one starts
the other copy from a copy of the file it made (one file copy, where copying every table again
cost as much as the first), then brings it up to date as any other.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from .database import QUIET, limit_memory
from .incremental import SCOPE_LOG, SCOPE_LOG_BUILDS

SCHEMA = "analytics"
EMPTY_FILE = "_empty.parquet"  # a by-day folder's schema, so that a glob over it always matches
SCRATCH = ".publishing"  # day files are written here, then moved into place
COPYING = ".copying"  # a copy of the published file is written under this suffix, then renamed
Columns = dict[str, list[tuple[str, str]]]  # table -> its (column, type) in order
BUILD_LOG = "model_builds"  # not a model: every build writes it
_REWRITTEN = "published_backfills"  # temporary: the backfills rewritten since the copy's publish


@dataclass
class PublishResult:
    duckdb_path: Path
    parquet_dir: Path
    live_path: Path
    tables: list[str]
    seconds: float
    full: bool = True
    copied: dict[str, str] = field(default_factory=dict)  # table -> how it reached the copy


def _copy_built(copy: str = "published") -> str:
    """The last build an attached copy holds (the spare one is attached as `published`)."""
    return f"select coalesce(max(finished_at), '-infinity'::timestamptz) from {copy}.{SCHEMA}.{BUILD_LOG}"


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
    for copy in _copies(db_path):
        copy.unlink(missing_ok=True)
        copy.with_name(copy.name + COPYING).unlink(missing_ok=True)
    published_live_db(db_path).unlink(missing_ok=True)
    shutil.rmtree(published_parquet_dir(db_path), ignore_errors=True)


def _sql_path(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def publish(db_path: Path, scopes: Mapping[str, str], memory_limit: str | None = None) -> PublishResult:
    """Bring the published DuckDB file and Parquet files of `db_path` up to date.

    `scopes`: the analytics tables that are incremental models, with their scope (`polls`: their
    rows are per poll and never change once written, the newer polls' are appended; `backfills`:
    the rows of the backfills the builds since rewrote are replaced). The caller holds the
    ingest lock: nothing else writes meanwhile. Publishing everything (a first publish, or after
    a full refresh) writes the whole history, as a full refresh reads it: it runs without the
    run's memory cap, and `memory_limit` is set back after it.
    """
    started = time.monotonic()
    target, parquet_dir = published_db(db_path), published_parquet_dir(db_path)
    parquet_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(parquet_dir / SCRATCH, ignore_errors=True)
    spare = _spare_copy(db_path)
    with duckdb.connect(str(db_path)) as con:
        con.execute(QUIET)
        _attach(con, spare, target)
        ours, theirs = _analytics_columns(con)
        full = _needs_everything(con, theirs)
        if full and _holds_everything(con, target):
            # the file readers have was published whole since the full refresh: the spare starts
            # as a copy of that file, and is brought up to date as at any other run
            con.execute("detach published")
            _replace_with_copy(spare, target)
            _attach(con, spare, target)
            ours, theirs = _analytics_columns(con)
            full = _needs_everything(con, theirs)
        if full:  # a day file per day of the history at once: more than a run's cap at 50 teams
            con.execute("reset memory_limit")
        try:
            how = _how_to_copy(con, ours, theirs, scopes, full)
            _write_files_and_copy(con, how, theirs, scopes, parquet_dir)
        finally:
            if full and memory_limit:
                limit_memory(con, memory_limit)
        con.execute("detach published")
    _hand_over(spare, target)
    shutil.rmtree(parquet_dir / SCRATCH, ignore_errors=True)
    tables = sorted(ours)
    by_poll = {t for t in tables if scopes.get(t) == "polls"}
    live = _publish_views(published_live_db(db_path), parquet_dir, tables, by_poll)
    return PublishResult(target, parquet_dir, live, tables, time.monotonic() - started, full, how)


def _how_to_copy(
    con: duckdb.DuckDBPyConnection, ours: Columns, theirs: Columns, scopes: Mapping[str, str], full: bool
) -> dict[str, str]:
    """How each table reaches the spare copy: `whole`, `appended` (the polls after the copy's
    newest), `by backfill` (the rows of the backfills rewritten since the copy's last publish),
    or `kept` (no build since wrote it). Whole where the copy's columns differ or what the builds
    since wrote is not known."""
    written = None if full else _written_since_copy(con, ours, theirs)
    how = {}
    for table in sorted(ours):
        scope = scopes.get(table)
        if full or ours[table] != theirs.get(table):
            how[table] = "whole"
        elif scope == "polls":
            how[table] = "appended"
        elif written is None or table == BUILD_LOG:
            how[table] = "whole"
        elif table not in written:
            how[table] = "kept"
        else:
            how[table] = "by backfill" if scope == "backfills" else "whole"
    return how


def _written_since_copy(con: duckdb.DuckDBPyConnection, ours: Columns, theirs: Columns) -> set[str] | None:
    """The tables the good builds since the copy's last publish wrote; None when a build since
    did not record them (it predates the record) or so many builds passed that the backfills
    they rewrote are no longer kept."""
    if "tables_written" not in dict(ours.get(BUILD_LOG, [])) or BUILD_LOG not in theirs:
        return None
    builds, recorded, written = con.execute(
        f"select count(*), count(tables_written), string_agg(tables_written, ',') from {SCHEMA}.{BUILD_LOG} "
        f"where outcome = 'ok' and finished_at > ({_copy_built()})"
    ).fetchone()
    if builds != recorded or builds > SCOPE_LOG_BUILDS:
        return None
    return set((written or "").split(",")) - {""}


def _write_files_and_copy(
    con: duckdb.DuckDBPyConnection,
    how: dict[str, str],
    theirs: Columns,
    scopes: Mapping[str, str],
    parquet_dir: Path,
) -> None:
    """The Parquet files, then the spare copy in one transaction."""
    # the Parquet files first: the day files from their own newest poll on (each copy lags by a
    # publish), the other tables whole where the copy changes
    replacements: list[tuple[Path, Path]] = []
    for table, way in how.items():
        file = parquet_dir / f"{table}.parquet"
        if scopes.get(table) == "polls":
            newest = _newest_poll_in_files(con, parquet_dir / table) if way == "appended" else 0
            replacements += _parquet_by_day(con, table, parquet_dir, newest, way == "whole")
        elif way != "kept" or not file.exists():
            replacements.append(_write_parquet(con, f"select * from {SCHEMA}.{table}", file))
    for source, destination in replacements:
        os.replace(source, destination)
    con.execute("begin transaction")  # the copy changes whole or not at all
    if "by backfill" in how.values():
        con.execute(
            f"create or replace temp table {_REWRITTEN} as select distinct team_id, transfer_backfill_id "
            f"from {SCOPE_LOG} where built_at > ({_copy_built()})"
        )
    for table, way in how.items():
        source, copy = f"{SCHEMA}.{table}", f"published.{SCHEMA}.{table}"
        if way == "appended":
            newest = _newest_poll(con, table)
            con.execute(f"insert into {copy} select * from {source} where poll_id > {newest}")
        elif way == "by backfill":
            rewritten = f"(team_id, transfer_backfill_id) in (select * from {_REWRITTEN})"
            con.execute(f"delete from {copy} where {rewritten}")
            con.execute(f"insert into {copy} select * from {source} where {rewritten}")
        elif way == "whole":
            con.execute(f"create or replace table {copy} as select * from {source}")
    for gone in sorted(set(theirs) - set(how)):
        con.execute(f"drop table published.{SCHEMA}.{gone}")
    con.execute("commit")
    con.execute("checkpoint published")  # the file alone holds everything: no write-ahead log


def _copies(db_path: Path) -> list[Path]:
    """The two copies the published file is in turn: readers get one while the other is updated."""
    return [published_dir(db_path) / f".{db_path.stem}.{n}.duckdb" for n in (1, 2)]


def _spare_copy(db_path: Path) -> Path:
    """The copy the published file is not now: nobody who opened the published file since the
    last publish reads it."""
    target = published_db(db_path)
    current = target.stat().st_ino if target.exists() else None
    for copy in _copies(db_path):
        if not copy.exists() or copy.stat().st_ino != current:
            return copy
    return _copies(db_path)[0]  # both the same file: cannot happen but by hand


def _attach(con: duckdb.DuckDBPyConnection, spare: Path, target: Path) -> None:
    """Attach the spare copy as `published`, with its schema."""
    # a publish that failed half-way in this process may have left it attached to DuckDB's instance
    con.execute("detach database if exists published")
    if not _try_attach(con, spare):
        # a reader that opened it two publishes ago still holds it (a pooled connection), or
        # this DuckDB cannot open it: start again from a copy of the published file (a cost that
        # grows with the history), or from nothing
        if target.exists():
            _replace_with_copy(spare, target)
        else:
            spare.unlink(missing_ok=True)
        if not _try_attach(con, spare):  # the published file is damaged or another DuckDB's
            spare.unlink(missing_ok=True)
            con.execute(f"attach {_sql_path(spare)} as published")
    con.execute(f"create schema if not exists published.{SCHEMA}")


def _replace_with_copy(spare: Path, target: Path) -> None:
    """The spare becomes a copy of the published file, whole or not at all (a kill mid-copy
    leaves the spare as it was). A reader holding the old spare keeps its own open file."""
    copying = spare.with_name(spare.name + COPYING)
    shutil.copyfile(target, copying)
    os.replace(copying, spare)


def _holds_everything(con: duckdb.DuckDBPyConnection, target: Path) -> bool:
    """Whether the published file holds every build since the last full refresh of the models."""
    if not target.exists():
        return False
    try:
        con.execute(f"attach {_sql_path(target)} as newest (read_only)")
    except duckdb.Error:  # damaged, or another DuckDB's
        return False
    try:
        return not _full_refresh_since(con, "newest")
    except duckdb.CatalogException:  # no build log: a copy an older release published
        return False
    finally:
        con.execute("detach newest")


def _try_attach(con: duckdb.DuckDBPyConnection, copy: Path) -> bool:
    # a killed publish's log goes: the copy is then whole as of its last finished publish
    copy.with_name(copy.name + ".wal").unlink(missing_ok=True)
    try:
        con.execute(f"attach {_sql_path(copy)} as published")
    except duckdb.Error:
        return False
    return True


def _hand_over(spare: Path, target: Path) -> None:
    """The spare becomes the published file in one rename; readers with the old one keep it."""
    moving = target.with_name(f".{target.name}.tmp")
    moving.unlink(missing_ok=True)
    try:
        os.link(spare, moving)
    except OSError:  # a file system without hard links: a copy, which costs what the file weighs
        shutil.copyfile(spare, moving)
    os.replace(moving, target)


def _newest_poll_in_files(con: duckdb.DuckDBPyConnection, folder: Path) -> int:
    """The newest poll in a by-day folder's last day (days are moved into place oldest first)."""
    days = sorted(folder.glob("[0-9]*.parquet"))
    if not days:
        return 0
    try:
        return con.execute(
            f"select coalesce(max(poll_id), 0) from read_parquet({_sql_path(days[-1])})"
        ).fetchone()[0]
    except duckdb.Error:  # unreadable: write every day again
        return 0


def _newest_poll(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return con.execute(f"select coalesce(max(poll_id), 0) from published.{SCHEMA}.{table}").fetchone()[0]


def _needs_everything(con: duckdb.DuckDBPyConnection, theirs: Columns) -> bool:
    """A first publish, or a full refresh of the models since the last one (old rows may differ)."""
    return BUILD_LOG not in theirs or _full_refresh_since(con, "published")


def _full_refresh_since(con: duckdb.DuckDBPyConnection, copy: str) -> bool:
    """Whether a full refresh of the models finished after the last build the attached `copy` holds."""
    return con.execute(
        f"select count(*) > 0 from {SCHEMA}.{BUILD_LOG} where outcome = 'ok' and mode is distinct from "
        f"'incremental' and finished_at > ({_copy_built(copy)})"
    ).fetchone()[0]


def _parquet_by_day(
    con: duckdb.DuckDBPyConnection, table: str, parquet_dir: Path, since: int, full: bool
) -> list[tuple[Path, Path]]:
    """The day files of the polls after `since`, each day whole (0: every day)."""
    folder = parquet_dir / table
    folder.mkdir(exist_ok=True)
    (parquet_dir / f"{table}.parquet").unlink(missing_ok=True)  # the layout before by-day folders
    source = f"{SCHEMA}.{table}"
    replacements = [_write_parquet(con, f"select * from {source} limit 0", folder / EMPTY_FILE)]
    first_day = con.execute(
        f"select min(cast(timezone('UTC', polled_at) as date)) from {source} where poll_id > {since}"
    ).fetchone()[0]
    if first_day is not None:
        scratch = parquet_dir / SCRATCH / table
        scratch.parent.mkdir(exist_ok=True)
        # the day as a date, not a formatted string: the same folder names, 3 s less at 21 M rows
        con.execute(
            f"copy (select *, cast(timezone('UTC', polled_at) as date) as day from {source} "
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


def _analytics_columns(con: duckdb.DuckDBPyConnection) -> tuple[Columns, Columns]:
    """(this database's, the attached copy's) analytics tables, each with its columns and types in
    order: one read of the catalog (each question to it costs DuckDB a millisecond or two)."""
    found: dict[bool, Columns] = {True: {}, False: {}}
    for is_ours, table, column, data_type in con.execute(
        "select table_catalog = current_database(), table_name, column_name, data_type "
        "from information_schema.columns where table_schema = ? "
        "and table_catalog in (current_database(), 'published') "
        "order by table_catalog, table_name, ordinal_position",
        [SCHEMA],
    ).fetchall():
        found[is_ours].setdefault(table, []).append((column, data_type))
    return found[True], found[False]


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

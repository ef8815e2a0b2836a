"""Opening the DuckDB file, with the failures a user can meet said in one clear line."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import duckdb

from .supermetrics.errors import ConfigError, LockedError

log = logging.getLogger(__name__)
# DuckDB draws a progress bar on stdout for statements over 2 s (a full refresh of a long
# history): noise in a cron job's mail. The build and the publish turn it off.
QUIET = "set enable_progress_bar = false"
# The build's settings: the models use no ASOF join any more (PostgreSQL has none), so the
# `asof_loop_join_threshold = 0` that kept DuckDB off its quadratic nested-loop variant is gone.
BUILD_SETTINGS = (QUIET,)
LOCK_MESSAGE = re.compile(r"Could not set lock on file|Conflicting lock is held", re.IGNORECASE)


def locked(db_path: Path) -> LockedError:
    return LockedError(
        f"the database {db_path} is open in another process (a BI tool or a DuckDB shell?): "
        "close it and run again; anything already polled is kept and loads on the next run"
    )


def connect(db_path: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection to `db_path`; `LockedError` when another process holds it, `ConfigError`
    when it is not a DuckDB database or cannot be opened."""
    try:
        return duckdb.connect(str(db_path), read_only=read_only)
    except duckdb.IOException as exc:
        if LOCK_MESSAGE.search(str(exc)):
            raise locked(db_path) from None
        raise ConfigError(f"cannot open the database {db_path}: {str(exc).splitlines()[0]}") from None


def limit_memory(con: duckdb.DuckDBPyConnection, limit: str) -> None:
    """Cap the memory of the DuckDB instance `con` belongs to (and every connection sharing it)."""
    try:
        con.execute(f"set memory_limit = '{limit.replace(chr(39), '')}'")
    except duckdb.Error as exc:
        raise ConfigError(
            f"duckdb.memory_limit = {limit!r} is not a memory size DuckDB accepts, such as '256MB' or "
            f"'2GB' ({str(exc).splitlines()[0]}): set [duckdb] memory_limit in .dlt/config.toml or "
            "DUCKDB__MEMORY_LIMIT"
        ) from None


def wait_for_database(db_path: Path, deadline: float) -> None:
    """Until `deadline` (time.monotonic()), wait while another process (a DuckDB shell, a BI
    tool) holds the database file; `LockedError` when it still does then."""
    said = False
    while True:
        try:
            if db_path.exists():
                connect(db_path).close()
            return
        except LockedError:
            if time.monotonic() >= deadline:
                raise
            if not said:
                log.warning("%s is open in another process: waiting for it (--wait-lock)", db_path)
                said = True
            time.sleep(0.2)  # the other process's lock: there is nothing to observe

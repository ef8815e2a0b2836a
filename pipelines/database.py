"""Opening the DuckDB file, with the failures a user can meet said in one clear line."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import duckdb

from .supermetrics.errors import ConfigError, LockedError

log = logging.getLogger(__name__)
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

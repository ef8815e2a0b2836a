"""Opening the DuckDB file, with the failures a user can meet said in one clear line."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from .supermetrics.errors import ConfigError, LockedError

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

"""Compaction and vacuum of the bucket's Delta tables, so that a run's cost stays flat.

Every run appends a small file to each table it loads; reading 10,000 of them costs far more than
reading one. After its load, a run compacts each table whose snapshot holds more than
`[lake] compact_after_files` files (default 4): for such a table,

    optimize (compact)      # one commit: the small files' rows in files of up to 32 MB
    checkpoint              # the log read from one Parquet file instead of every commit's JSON
    clean up the log        # commits older than `[lake] retention_hours` (default 24)
    vacuum                  # delete the files no snapshot of that time needs

`backfills compact` does it now, for every table. A kill at any moment loses and doubles nothing:
the compaction is one commit (before it, the new files are in no commit and no reader takes
them), and vacuum deletes only files that no snapshot younger than the retention reads. A reader
(a Spark build, another engine) that started on a snapshot less than `retention_hours` ago keeps
its files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .lake import Lake
from .supermetrics.errors import ConfigError

DEFAULT_COMPACT_AFTER_FILES = 4
# Readers take the newest snapshot (the run) or one for the length of a build; a day of history
# keeps the log short (opening a table lists it: 1,500 commits cost 7 ms an open, 3 cost 3 ms)
DEFAULT_RETENTION_HOURS = 24
# Files this large are left as they are: a compaction rewrites at most about this much per table,
# however large the table grows (Delta's default target, 100 MB, would rewrite a year each time)
TARGET_FILE_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class CompactSettings:
    compact_after_files: int = DEFAULT_COMPACT_AFTER_FILES
    retention_hours: int = DEFAULT_RETENTION_HOURS


@dataclass(frozen=True)
class Compacted:
    table: str
    files_before: int
    files_after: int
    vacuumed: int  # files deleted

    def describe(self) -> str:
        return f"{self.table}: {self.files_before} -> {self.files_after} file(s), {self.vacuumed} deleted"


def settings() -> CompactSettings:
    """`[lake] compact_after_files` and `[lake] retention_hours` (or LAKE__COMPACT_AFTER_FILES,
    LAKE__RETENTION_HOURS); `ConfigError` for anything but a whole number in range."""
    import dlt

    files, hours = dlt.config.get("lake.compact_after_files"), dlt.config.get("lake.retention_hours")
    return CompactSettings(
        _whole("compact_after_files", files, DEFAULT_COMPACT_AFTER_FILES, 1),
        _whole("retention_hours", hours, DEFAULT_RETENTION_HOURS, 0),
    )


def _whole(name: str, value: Any, default: int, least: int) -> int:
    """A whole number of at least `least`; `ConfigError` naming the setting for anything else."""
    if value is None:
        return default
    try:
        number = int(str(value))
    except ValueError:
        number = least - 1
    if number < least:
        raise ConfigError(f"[lake] {name} = {value!r} must be a whole number of at least {least}")
    return number


def compact_due(lake: Lake, rules: CompactSettings) -> list[Compacted]:
    """Compact the tables whose snapshot holds more than `compact_after_files` files."""
    return [
        compact_table(table, delta, rules.retention_hours)
        for table, delta in lake.delta_tables().items()
        if len(delta.file_uris()) > rules.compact_after_files
    ]


def compact_all(lake: Lake, rules: CompactSettings) -> list[Compacted]:
    """`backfills compact`: every table, whatever its number of files."""
    tables = lake.delta_tables()
    return [compact_table(table, delta, rules.retention_hours) for table, delta in tables.items()]


def compact_table(table: str, delta: Any, retention_hours: int) -> Compacted:
    before = len(delta.file_uris())
    retention = f"interval {retention_hours} hours"
    kept = {"delta.logRetentionDuration": retention, "delta.deletedFileRetentionDuration": retention}
    if any(delta.metadata().configuration.get(key) != value for key, value in kept.items()):
        delta.alter.set_table_properties(kept)  # once: a commit of the table's settings
    delta.optimize.compact(target_size=TARGET_FILE_BYTES)
    delta.create_checkpoint()
    delta.cleanup_metadata()
    # full: also the files of writes a kill cut short, and an older release's plain Parquet
    deleted = delta.vacuum(
        retention_hours=retention_hours, dry_run=False, enforce_retention_duration=False, full=True
    )
    return Compacted(table, before, len(delta.file_uris()), len(deleted))

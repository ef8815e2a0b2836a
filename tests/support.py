"""Helpers shared by tests: the on-disk states that crashes leave."""

from __future__ import annotations

import shutil
from pathlib import Path

from pipelines.engines import Warehouse


def put_last_load_back(db: Path, *, forget_in_database: bool, target: Warehouse | None = None) -> str:
    """Make dlt believe its last package was never loaded: the package back in `load/normalized/`
    with its jobs in `started_jobs/`, as a run killed after its inserts committed leaves it.

    `forget_in_database`: also remove the load's `_dlt_loads` and `_settled_loads` rows, as a kill
    before dlt's package commit leaves them. Without it, the database is as a power cut after the
    whole run leaves it when the file system lost dlt's file moves. Returns the load id.
    `target`: the database when it is not the DuckDB file `db` (PostgreSQL, a bucket).
    """
    target = target or Warehouse("duckdb", db)
    load = target.working_dir() / "supermetrics_backfills" / "load"
    package = sorted((load / "loaded").iterdir())[-1]
    pending = load / "normalized" / package.name
    shutil.move(package, pending)
    (pending / "package_completed.json").unlink()
    for job in (pending / "completed_jobs").iterdir():
        job.rename(pending / "started_jobs" / job.name)
    if forget_in_database and target.engine == "filesystem":  # its row in the bucket: a file of its own
        lake = target.lake()
        lake.fs.rm(f"{lake.dataset_path}/_dlt_loads/supermetrics__{package.name}.jsonl")
    elif forget_in_database:
        with target.connect() as con:
            for (table,) in con.rows(
                "select table_name from information_schema.tables where table_schema = 'supermetrics' "
                "and table_name in ('_dlt_loads', '_settled_loads')"
            ):
                con.run(f"delete from supermetrics.{table} where load_id = %s", package.name)
    return package.name

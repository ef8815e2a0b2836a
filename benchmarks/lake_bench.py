"""The filesystem destination and Spark: what they cost beside DuckDB, measured in the same run.

- The full build of the models on Spark (`local[2]`) against DuckDB's full build of the same
  generated history (the DuckDB file's raw tables, written as the bucket's Delta tables).
- The baseline a scheduled run reads from the bucket after 10,000 loads (cron every 5 minutes for
  35 days: one append per table and run, compacted by the run's own rule) against the same rows
  as one load.

Standalone: `python -m benchmarks.lake_bench [polls [loads]]` (default a week of 5-minute polls
for Spark, 10,000 loads).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb

from pipelines import spark
from pipelines.engines import Warehouse
from pipelines.engines.duckdb import DuckDBConnection
from pipelines.ingest import open_pipeline
from pipelines.lake import Lake, attach
from pipelines.lake_compact import CompactSettings, compact_due
from pipelines.models import build
from pipelines.supermetrics.baseline import read_baseline

from .history import generate
from .models_bench import timed

WEEK = 7 * 288
LOADS = 10_000


def write_lake(db_path: Path, bucket: Path, loads: int = 1, rules: CompactSettings | None = None) -> Lake:
    """The DuckDB file's raw tables as the bucket's Delta tables, split by poll into `loads` loads:
    each an append per table with rows (dlt's own call) and a `_dlt_loads` row, then the run's
    compaction rule (`rules`), as cron's runs leave them."""
    import fsspec
    from dlt.common.libs.deltalake import write_delta_table

    dataset = bucket / "supermetrics"
    (dataset / "_dlt_loads").mkdir(parents=True, exist_ok=True)
    lake = Lake(fsspec.filesystem("file"), str(bucket), str(dataset), "file")
    with duckdb.connect(str(db_path), read_only=True) as con, ThreadPoolExecutor(4) as pool:
        tables = [
            t
            for (t,) in con.execute(
                "select table_name from information_schema.tables where table_schema = 'supermetrics' "
                "and table_name not like '\\_dlt%' escape '\\' and table_name <> '_settled_loads'"
            ).fetchall()
        ]
        newest = con.execute("select max(poll_id) from supermetrics.polls").fetchall()[0][0]
        by_poll = {table: _ordered_by_poll(con, table) for table in tables}
        for n in range(loads):
            load_id = f"{1800000000 + n}.{n:06d}"
            low, high = n * newest // loads, (n + 1) * newest // loads
            batches = {}
            for table, (rows, polls) in by_poll.items():
                first, last = polls.searchsorted(low, "right"), polls.searchsorted(high, "right")
                if last > first:
                    batches[table] = rows.slice(first, last - first)
            # dlt loads a package's tables in parallel too
            list(
                pool.map(
                    lambda item: write_delta_table(str(dataset / item[0]), item[1], "append"), batches.items()
                )
            )
            row = {"load_id": load_id, "schema_name": "supermetrics", "status": 0}
            (dataset / "_dlt_loads" / f"supermetrics__{load_id}.jsonl").write_text(json.dumps(row))
            if rules is not None:
                compact_due(lake, rules)
    return lake


def _ordered_by_poll(con: duckdb.DuckDBPyConnection, table: str) -> tuple:
    """A raw table's rows in poll order, and each row's poll id (a child row's: its parent's)."""
    parent = table.split("__")[0]
    rows = (
        f"select c.*, p.poll_id as _poll from supermetrics.{table} as c "
        f"join supermetrics.{parent} as p on p._dlt_id = c._dlt_parent_id"
        if "__" in table
        else f"select *, poll_id as _poll from supermetrics.{table}"
    )
    ordered = con.sql(f"{rows} order by _poll").to_arrow_table()
    return ordered.drop_columns(["_poll"]), ordered.column("_poll").to_numpy()


def baseline_seconds(lake: Lake) -> float:
    def read() -> None:
        with DuckDBConnection(duckdb.connect()) as con:
            attach(con.raw, lake, "supermetrics")
            read_baseline(con, "supermetrics")

    return timed(read, 3)


def run(work: Path, polls: int = WEEK, loads: int = LOADS) -> dict:
    db_path = work / "lake-bench.duckdb"
    counts = generate(db_path, polls=polls)
    pipeline, engine = open_pipeline(db_path), Warehouse("duckdb", db_path)
    build(pipeline, "supermetrics", engine)  # warm: file cache, first-build schema creation
    duckdb_build = timed(lambda: build(pipeline, "supermetrics", engine, full_refresh=True), 3)
    whole = write_lake(db_path, work / "bucket-one-load")
    started = time.monotonic()
    session = spark.start_session("local[2]")
    session_start = time.monotonic() - started
    try:
        spark.build(session, whole)  # warm: the JVM's classes and code generation
        spark_build = timed(lambda: spark.build(session, whole), 2)
    finally:
        session.stop()
    many_polls = work / "lake-bench-loads.duckdb"  # a poll a load: cron's runs over `loads` runs
    generate(many_polls, polls=loads)
    started = time.monotonic()
    # retention 0: the loads come seconds apart here, not 5 minutes; a day's retention would keep
    # every commit of the run, where cron's runs keep a day's (288)
    rules = CompactSettings(retention_hours=0)
    split = write_lake(many_polls, work / "bucket-per-run", loads=loads, rules=rules)
    writing = time.monotonic() - started
    return {
        "counts": counts,
        "duckdb_build": duckdb_build,
        "spark_build": spark_build,
        "session_start": session_start,
        "loads": loads,
        "writing": writing,
        "baseline_one_load": baseline_seconds(write_lake(many_polls, work / "bucket-one-load-many")),
        "baseline_per_run": baseline_seconds(split),
    }


def report(result: dict) -> list[str]:
    counts = result["counts"]
    ratio = result["spark_build"] / result["duckdb_build"]
    files = result["baseline_per_run"] / result["baseline_one_load"]
    return [
        "## Past one machine: Delta tables and Spark",
        "",
        f"History: {counts['polls']:,} polls, {counts['backfill_versions']:,} stored versions.",
        "",
        "| what | measured | baseline (same run) | ratio |",
        "| --- | --- | --- | --- |",
        f"| full build of every model with data tests | Spark local[2] {result['spark_build']:.1f} s "
        f"| DuckDB {result['duckdb_build']:.1f} s | {ratio:.1f}x |",
        f"| a run's baseline from the bucket, compacted by the run's rule | {result['loads']:,} loads "
        f"{result['baseline_per_run']:.2f} s | the same rows as 1 load {result['baseline_one_load']:.2f} s "
        f"| {files:.2f}x |",
        "",
        f"Spark's session started in {result['session_start']:.0f} s (not in the build's figure). "
        f"Writing the {result['loads']:,} loads (an append per table and load, compacted past "
        f"{CompactSettings().compact_after_files} files, no older commit kept) took "
        f"{result['writing']:.0f} s.",
    ]


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as work_dir:
        polls = int(sys.argv[1]) if len(sys.argv) > 1 else WEEK
        loads = int(sys.argv[2]) if len(sys.argv) > 2 else LOADS
        print("\n".join(report(run(Path(work_dir), polls, loads))))

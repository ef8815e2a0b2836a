"""The filesystem destination and Spark: what they cost beside DuckDB, measured in the same run.

- The full build of the models on Spark (`local[2]`) against DuckDB's full build of the same
  generated history (the DuckDB file's raw tables, written as Parquet in dlt's layout).
- The baseline a scheduled run reads from the bucket when each run's load is its own file
  (cron every 5 minutes: one file per table per run) against the same rows in one file per table.

Standalone: `python -m benchmarks.lake_bench [polls]` (default a week of 5-minute polls).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from pipelines import spark
from pipelines.engines import Warehouse
from pipelines.engines.duckdb import DuckDBConnection
from pipelines.ingest import open_pipeline
from pipelines.lake import Lake, attach
from pipelines.models import build
from pipelines.supermetrics.baseline import read_baseline

from .history import generate
from .models_bench import timed

WEEK = 7 * 288


def write_lake(db_path: Path, bucket: Path, loads: int = 1) -> Lake:
    """The DuckDB file's raw tables as a bucket in dlt's layout, split by poll into `loads` loads
    (a file per table and load, as cron's runs would leave them), each with its _dlt_loads row."""
    import fsspec

    dataset = bucket / "supermetrics"
    (dataset / "_dlt_loads").mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(db_path), read_only=True) as con:
        tables = [
            t
            for (t,) in con.execute(
                "select table_name from information_schema.tables where table_schema = 'supermetrics' "
                "and table_name not like '\\_dlt%' escape '\\' and table_name <> '_settled_loads'"
            ).fetchall()
        ]
        newest = con.execute("select max(poll_id) from supermetrics.polls").fetchone()[0]
        for n in range(loads):
            load_id = f"{1800000000 + n}.{n:06d}"
            low, high = n * newest // loads, (n + 1) * newest // loads
            for table in tables:
                rows = (
                    f"select c.* from supermetrics.{table} as c join supermetrics.{table.split('__')[0]} "
                    f"as p on p._dlt_id = c._dlt_parent_id where p.poll_id > {low} and p.poll_id <= {high}"
                    if "__" in table
                    else f"select * from supermetrics.{table} where poll_id > {low} and poll_id <= {high}"
                )
                (dataset / table).mkdir(exist_ok=True)
                con.execute(f"copy ({rows}) to '{dataset / table / f'{load_id}.0.parquet'}' (format parquet)")
            row = {"load_id": load_id, "schema_name": "supermetrics", "status": 0}
            (dataset / "_dlt_loads" / f"supermetrics__{load_id}.jsonl").write_text(json.dumps(row))
    return Lake(fsspec.filesystem("file"), str(bucket), str(dataset), "file")


def baseline_seconds(lake: Lake) -> float:
    def read() -> None:
        with DuckDBConnection(duckdb.connect()) as con:
            attach(con.raw, lake, "supermetrics")
            read_baseline(con, "supermetrics")

    return timed(read, 3)


def run(work: Path, polls: int = WEEK) -> dict:
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
    runs = polls // 4  # a run every 20 minutes: 4 polls a load
    split = write_lake(db_path, work / "bucket-per-run", loads=runs)
    return {
        "counts": counts,
        "duckdb_build": duckdb_build,
        "spark_build": spark_build,
        "session_start": session_start,
        "loads": runs,
        "baseline_one_file": baseline_seconds(whole),
        "baseline_per_run": baseline_seconds(split),
    }


def report(result: dict) -> list[str]:
    counts = result["counts"]
    ratio = result["spark_build"] / result["duckdb_build"]
    files = result["baseline_per_run"] / result["baseline_one_file"]
    return [
        "## Past one machine: Parquet and Spark",
        "",
        f"History: {counts['polls']:,} polls, {counts['backfill_versions']:,} stored versions.",
        "",
        "| what | measured | baseline (same run) | ratio |",
        "| --- | --- | --- | --- |",
        f"| full build of every model with data tests | Spark local[2] {result['spark_build']:.1f} s "
        f"| DuckDB {result['duckdb_build']:.1f} s | {ratio:.1f}x |",
        f"| a run's baseline from the bucket | {result['loads']:,} loads {result['baseline_per_run']:.2f} s "
        f"| 1 load {result['baseline_one_file']:.2f} s | {files:.1f}x |",
        "",
        f"Spark's session started in {result['session_start']:.0f} s (not in the build's figure).",
    ]


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as work_dir:
        print("\n".join(report(run(Path(work_dir), int(sys.argv[1]) if len(sys.argv) > 1 else WEEK))))

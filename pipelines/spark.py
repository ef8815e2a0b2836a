"""Build the models with Spark from the raw history as Delta tables (the filesystem destination).

`backfills models --engine spark` (the default for `destination = "filesystem"`):

    read each raw table's snapshot         # pipelines.lake: the Parquet files deltalake names
    every model, in the usual order        # the same sql/ files, through pipelines.spark_sql
        staging models: temporary views; the others: Parquet under <models_url>/<build>/<schema>/<name>/
    the data tests of every mart           # a failure: exit 70, the previous build stays current
    point <models_url>/_current.json at the build, delete the older builds but the one the pointer
    named before (a reader may still be in it); a killed build's folder, never named, goes too

Readers (BI tools, Trino/Athena, a notebook) read the build `_current.json` names: a build is
never visible half-written, and the previous one stays whole while a reader may still be on it.
This is a full build each time: Spark is the batch engine for a history too big for one machine,
not the 5-minute loop (which stays on DuckDB or PostgreSQL).

`[spark] master` (default `local[*]`, or whatever spark-submit passes) and `[spark] models_url`
(default `<bucket_url>/models`) are read from .dlt/config.toml or SPARK__MASTER, SPARK__MODELS_URL.
"""

from __future__ import annotations

import json
import posixpath
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp

from . import models
from .engines import Warehouse
from .lake import Lake, features_beyond_files
from .models import SQL_DIR, BuildResult, Model
from .spark_sql import to_spark, view_name
from .supermetrics.errors import ConfigError, ModelError
from .supermetrics.settings import DATASET_NAME

POINTER = "_current.json"
SESSION_CONF = {
    "spark.sql.session.timeZone": "UTC",  # Spark's timestamp is then DuckDB's timestamptz
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",  # readable as UTC by any engine
    "spark.sql.parquet.mergeSchema": "true",  # a column dlt added later is missing in older files
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
}


@dataclass
class SparkBuild(BuildResult):
    build_url: str = ""
    tables: list[str] = field(default_factory=list)


def settings() -> tuple[str | None, str | None]:
    """([spark] master, [spark] models_url), None where not configured."""
    import dlt

    return dlt.config.get("spark.master"), dlt.config.get("spark.models_url")


def build_from_config(target: Warehouse) -> SparkBuild:
    """`backfills models --engine spark`: the configured bucket, master and models_url."""
    target.require("spark")
    master, models_url = settings()
    lake = target.lake()
    models_root(lake, models_url)  # a bad one is said before Spark takes its seconds to start
    spark = start_session(master)
    try:
        return build(spark, lake, models_url)
    finally:
        if spark.sparkContext.master.startswith("local"):  # ours; a cluster's session is not
            spark.stop()


def models_root(lake: Lake, models_url: str | None) -> str:
    """Where the builds go: `[spark] models_url`, else <bucket_url>/models. It must be in the
    bucket's file system: the pointer and the clean-up use the bucket's credentials."""
    root = (models_url or lake.spark_url(posixpath.join(lake.root, "models"))).rstrip("/")
    if not root.startswith(f"{lake.protocol}://"):
        raise ConfigError(
            f"[spark] models_url = {root!r} must be in the bucket's file system ({lake.protocol}://...), "
            "beside the raw history"
        )
    return root


def start_session(master: str | None = None) -> Any:
    """A Spark session: `master`, else the one spark-submit set, else local[*]."""
    try:
        from pyspark import SparkConf
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError(
            "the Spark build needs pyspark: pip install 'supermetrics-backfill-monitor[spark]' "
            "(make test installs it), or run it with spark-submit on a cluster"
        ) from None
    builder = SparkSession.builder.appName("backfills-models")
    if master or not SparkConf().contains("spark.master"):
        master = master or "local[*]"
        builder = builder.master(master)
    if (master or "").startswith("local"):  # one machine: a few shuffle tasks, not a cluster's 200
        builder = builder.config("spark.sql.shuffle.partitions", "2")
        builder = builder.config("spark.sql.adaptive.enabled", "false")  # re-planning costs more here
    for key, value in SESSION_CONF.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("OFF")  # a failure is raised, with its first line, by the build
    return session


def build(spark: Any, lake: Lake, models_url: str | None = None, sql_dir: Path = SQL_DIR) -> SparkBuild:
    """Build every model from the raw tables' snapshots into a new build folder, test it, and
    make it the current one. Raises `ModelError` (the previous build stays current)."""
    started = time.monotonic()
    root = models_root(lake, models_url)
    build_id = f"build-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}"
    build_url = f"{root}/{build_id}"
    all_models = models.discover(sql_dir)
    through_poll_id = _register_raw(spark, lake)
    tables = []
    try:
        for model in all_models:
            _build_model(spark, model, build_url)
            if model.materialized == "table":
                tables.append(model.relation)
        failures, tests = models.run_data_tests(_Client(spark), all_models, "tests")
        if failures:
            raise ModelError(f"{len(failures)} of {tests} data tests failed: {'; '.join(failures)}")
        warnings, checks = models.run_data_tests(_Client(spark), all_models, "warnings")
    except Exception:
        _remove(lake, build_url)  # never pointed at: nobody reads it
        raise
    previous = current_build(lake, root)  # readers may still be in it: it stays
    _point_at(lake, root, build_id, tables, through_poll_id)
    _remove_old_builds(lake, root, build_id, previous)
    return SparkBuild(
        [m.relation for m in all_models],
        tests + checks,
        warnings,
        time.monotonic() - started,
        "full (spark)",
        build_url=build_url,
        tables=tables,
    )


def _build_model(spark: Any, model: Model, build_url: str) -> None:
    try:
        frame = spark.sql(to_spark(model.full_refresh_sql))  # every build here is a full one
        if model.materialized == "view":
            frame.createOrReplaceTempView(view_name(model.relation))
            return
        path = f"{build_url}/{model.schema}/{model.name}"
        frame.write.mode("error").parquet(path)
        spark.read.parquet(path).createOrReplaceTempView(view_name(model.relation))
    except Exception as exc:  # Spark's own message says what is wrong with the SQL
        raise ModelError(f"building {model.relation} on Spark failed: {_first_line(exc)}") from None


def _register_raw(spark: Any, lake: Lake) -> int:
    """Each raw table as a temporary view of its Delta snapshot (`_read_table`), without the rows
    of a load still under way (an empty view, with the columns the models read, for a table dlt
    has not written yet); returns the newest poll id."""
    snapshot = lake.snapshot()
    files = {table: delta.file_uris() for table, delta in snapshot.tables.items()}
    files = {table: uris for table, uris in files.items() if uris}
    if "polls" not in files:
        raise ConfigError(f"{lake.url(lake.dataset_path)} holds no polls yet: run backfills ingest first")
    for table, uris in files.items():
        relation = view_name(f"{DATASET_NAME}.{table}")
        frame = _read_table(spark, lake, table, snapshot.tables[table], uris)
        frame.createOrReplaceTempView(f"{relation}_files")
        parent = snapshot.parent(table)
        rows = snapshot.rows(table, f"{relation}_files", parent and view_name(f"{DATASET_NAME}.{parent}"))
        spark.sql(rows).createOrReplaceTempView(relation)
    for statement in models.bootstrap_sql(DATASET_NAME):
        create = sqlglot.parse_one(statement, read="duckdb")
        table = create.this.this.name
        if table not in files:
            columns = ", ".join(c.sql(dialect="spark") for c in create.this.find_all(exp.ColumnDef))
            spark.createDataFrame([], columns).createOrReplaceTempView(view_name(f"{DATASET_NAME}.{table}"))
    return spark.sql(f"select max(poll_id) from {view_name(DATASET_NAME + '.polls')}").first()[0]


def _read_table(spark: Any, lake: Lake, table: str, delta: Any, uris: list[str]) -> Any:
    """A raw table at the snapshot's version: with Delta's own reader where the cluster has it
    (Databricks, delta-spark), else the Parquet files deltalake names for it (no jars)."""
    try:
        reader = spark.read.format("delta").option("versionAsOf", delta.version())
        return reader.load(_spark_uri(lake, lake.table_path(table)))
    except Exception as exc:  # Spark says DATA_SOURCE_NOT_FOUND where no Delta is installed
        if "DATA_SOURCE_NOT_FOUND" not in str(exc):
            raise
    beyond = features_beyond_files(delta)
    if beyond:
        raise ConfigError(
            f"{lake.url(lake.table_path(table))} uses Delta's {', '.join(beyond)}, which its Parquet "
            "files alone do not show: build where Spark has Delta (Databricks, or delta-spark on the "
            "classpath)"
        )
    return spark.read.parquet(*[_spark_uri(lake, uri) for uri in uris])


def _spark_uri(lake: Lake, uri: str) -> str:
    """deltalake's URI of a file, as Spark reads it: a local file's path gets its scheme."""
    return uri if "://" in uri else lake.spark_url(uri)


class _Client:
    """What `models.run_data_tests` calls, on Spark."""

    def __init__(self, spark: Any) -> None:
        self.spark = spark

    def execute_sql(self, sql: str) -> list[tuple]:
        return [tuple(row) for row in self.spark.sql(to_spark(sql)).collect()]


def _point_at(lake: Lake, root: str, build_id: str, tables: list[str], through_poll_id: int) -> None:
    pointer = {
        "build": build_id,
        "url": f"{root}/{build_id}",
        "tables": {t: f"{root}/{build_id}/{t.replace('.', '/')}" for t in tables},
        "finished_at": datetime.now(UTC).isoformat(),
        "through_poll_id": through_poll_id,
    }
    path = posixpath.join(_fs_path(root), POINTER)
    text = json.dumps(pointer, indent=2).encode()
    if lake.is_local:  # a rename is atomic on a local disk; an object store's put is by itself
        lake.fs.pipe_file(path + ".tmp", text)
        lake.fs.mv(path + ".tmp", path)
    else:
        lake.fs.pipe_file(path, text)


def current_build(lake: Lake, root: str) -> str | None:
    """The build `_current.json` names now, if any."""
    path = posixpath.join(_fs_path(root), POINTER)
    if not lake.fs.exists(path):
        return None
    return json.loads(lake.fs.cat_file(path))["build"]


def _remove_old_builds(lake: Lake, root: str, current: str, previous: str | None) -> None:
    """Delete every build folder older than `current` but `previous` (the one readers were given
    until now): a folder of a killed build, which no pointer named, counts for nothing. Newer
    folders are left alone (another build under way)."""
    folder = _fs_path(root)
    builds = sorted(
        posixpath.basename(p.rstrip("/"))
        for p in lake.fs.ls(folder, detail=False)
        if posixpath.basename(p.rstrip("/")).startswith("build-")
    )
    for old in builds:
        if old < current and old != previous:
            _remove(lake, f"{folder}/{old}")


def _remove(lake: Lake, url: str) -> None:
    path = _fs_path(url)
    if lake.fs.exists(path):
        lake.fs.rm(path, recursive=True)


def _fs_path(url: str) -> str:
    """A URL Spark reads, as the path fsspec takes."""
    return url.split("://", 1)[1] if "://" in url else url


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

"""Past one machine: the raw history as Parquet (dlt's filesystem destination), the models on Spark.

One seeded simulated history is ingested into a bucket (a local folder) by the real CLI, killed
in each of the chaos test's ways (tests/test_chaos.py), and into a DuckDB twin without
interruption. The bucket's committed files must then hold the twin's raw tables row for row,
none twice; and the models Spark builds from those files (`backfills models`, the one Spark
session of the test run) must equal the twin's, built by DuckDB, table for table: the same
columns with the same types, the same rows.

Rows are compared as sets after sorting; numbers rounded to 6 decimals (`normalised`), times in
UTC. Left out: dlt's ids and what differs between any two runs given the same answers (this
machine's clock, per-request headers), as in the PostgreSQL test.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from pathlib import Path

import duckdb
import pytest
from cli_process import backfills_env, run_backfills
from conftest import RAW_TABLES, TEAM, Api, add_transfer, days_ago
from support import put_last_load_back
from test_adoption import run_previous_release
from test_chaos import ENV, MODES, kill_a_run
from test_postgres import CHILD_TABLE, TEAMS, VOLATILE, normalised, seeded_simulator, tables
from test_stopped_runs import assert_equal

from pipelines.engines import Warehouse
from pipelines.ingest import ingest, rebuild_models
from pipelines.lake import bucket_config
from pipelines.simulator import Simulator
from pipelines.supermetrics.settings import DATASET_NAME

# A JVM that lives two minutes on a few thousand rows: the quick compiler only and one GC thread
# (on two busy cores, 40% less CPU than the defaults, which suit a long build on a year's data)
SHORT_LIVED_JVM = "--driver-java-options '-XX:TieredStopAtLevel=1 -XX:+UseSerialGC' pyspark-shell"

# an intermediate table's pointer to a dlt id
SPARK_VOLATILE = VOLATILE | {"stored_report_version_id"}


def lake_env(bucket: Path) -> dict[str, str]:
    return {
        **ENV,
        "BACKFILLS_DESTINATION": "filesystem",
        "DESTINATION__FILESYSTEM__BUCKET_URL": str(bucket),
        "SOURCES__SUPERMETRICS__API_KEY": "sim-key",
    }


def bucket_config_for(bucket: Path) -> object:
    """dlt's configuration of a local bucket, as `bucket_config()` resolves it from the environment."""
    from dlt.common.configuration import resolve_configuration
    from dlt.common.storages import FilesystemConfiguration

    return resolve_configuration(FilesystemConfiguration(bucket_url=str(bucket)))


def committed_polls(target: Warehouse) -> int:
    with target.read_lake() as con:
        return con.rows("select count(*) from supermetrics.polls")[0][0]


def half_written_file(target: Warehouse) -> Path:
    """A Parquet file in a table's folder that no commit names, cut short, as a write killed
    before its commit leaves it."""
    folder = Path(target.lake().table_path("polls"))
    data = sorted(folder.glob("part-*.parquet"))[0].read_bytes()
    orphan = folder / "part-00000-00000000-0000-0000-0000-000000000000-c000.snappy.parquet"
    orphan.write_bytes(data[: len(data) // 2])
    return orphan


def spark_tables(pointer: dict, twin: duckdb.DuckDBPyConnection) -> dict[str, tuple[list, list]]:
    """Per table of the Spark build: (columns with DuckDB's types, rows) read from its Parquet."""
    out = {}
    with duckdb.connect() as con:
        for relation, url in pointer["tables"].items():
            path = url.removeprefix("file://")
            con.execute(f"create or replace view t as select * from read_parquet('{path}/*.parquet')")
            out[relation] = _described(con, "t")
    twin_out = {relation: _described(twin, relation) for relation in pointer["tables"]}
    return out, twin_out


def _described(con: duckdb.DuckDBPyConnection, relation: str) -> tuple[list, list]:
    columns = con.execute(f"describe {relation}").fetchall()
    kept = [name for name, *_ in columns if name not in SPARK_VOLATILE]
    rows = con.execute(f"select {', '.join(kept)} from {relation}").fetchall()
    return [(name, kind) for name, kind, *_ in columns], sorted(
        (tuple(normalised(v) for v in row) for row in rows), key=repr
    )


@pytest.mark.timeout(1200)  # generous: a loaded machine makes every run (and Spark) slower, never wrong
@pytest.mark.slow
def test_killed_runs_leave_the_bucket_whole_and_spark_builds_what_duckdb_builds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(20261201)
    bucket, local, twin = tmp_path / "bucket", tmp_path / "data" / "b.duckdb", tmp_path / "twin" / "b.duckdb"
    env = lake_env(bucket)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DESTINATION__FILESYSTEM__BUCKET_URL", str(bucket))
    monkeypatch.setenv("SOURCES__SUPERMETRICS__API_KEY", env["SOURCES__SUPERMETRICS__API_KEY"])
    target = Warehouse("filesystem", local, bucket_config())
    with seeded_simulator() as sim:
        args = ["ingest", "--base-url", sim.base_url, "--db", str(local)]
        args += [a for team in TEAMS for a in ("--team-id", str(team))]

        def clean_run() -> str:
            result = run_backfills(*args, cwd=tmp_path, **env)
            assert result.returncode == 0, result.stderr
            assert "models:" not in result.stdout  # the run loads files; Spark builds the models
            return result.stderr

        def twin_runs(count: int) -> None:
            for _ in range(count):
                ingest(
                    twin,
                    team_ids=list(TEAMS),
                    base_url=sim.base_url,
                    build_models=False,
                    destination="duckdb",
                )

        started = time.monotonic()
        clean_run()
        run_seconds = time.monotonic() - started  # only to spread the random kill moments over a run
        twin_runs(1)
        killed = dict.fromkeys(MODES, 0)
        for mode in MODES:
            sim.clock.advance(300)
            before = committed_polls(target)
            if mode == "committed_not_recorded":
                clean_run()
                put_last_load_back(local, forget_in_database=True, target=target)
                half_written_file(target)
                # readers take no row of a load without its _dlt_loads row, nor a file no commit names
                assert committed_polls(target) == before
                killed[mode] += 1
            else:
                working = target.working_dir()
                killed[mode] += kill_a_run(
                    mode, args, tmp_path, backfills_env(**env), working, run_seconds, rng
                )
            said = clean_run()
            if mode == "committed_not_recorded":  # dlt appended the load to each table again
                assert "duplicated row(s)" in said
            kept = committed_polls(target) - before  # a run stores both teams' polls in one load, or none
            assert kept in (2, 4), kept
            twin_runs(kept // 2)  # one uninterrupted run per run the bucket kept
    rebuild_models(twin, destination="duckdb")
    assert killed["committed_not_recorded"] == 1

    with target.read_lake() as lake:
        assert_equal(lake.raw, "?", twin, with_models=False)  # none twice
    stored = [p.read_bytes() for p in [*bucket.rglob("*"), *target.working_dir().rglob("*")] if p.is_file()]
    assert not any(sim.api_key.encode() in data for data in stored)

    # the models on Spark, through the CLI: the destination's default engine
    if shutil.which("java") is None and not os.environ.get("BACKFILLS_REQUIRE_SPARK"):
        pytest.skip("Spark needs a JDK 17 (java on PATH): scripts/ensure-java installs one, as .ci/run does")
    result = run_backfills(
        "models",
        "--db",
        str(local),
        cwd=tmp_path,
        timeout=1000,
        SPARK__MASTER="local[2]",
        PYSPARK_SUBMIT_ARGS=SHORT_LIVED_JVM,
        **env,
    )
    assert result.returncode == 0, result.stderr
    assert "models on Spark: file://" in result.stdout
    pointer = json.loads((bucket / "models" / "_current.json").read_text())
    with duckdb.connect(str(twin), read_only=True) as duck:
        newest = duck.execute("select max(poll_id) from supermetrics.polls").fetchone()[0]
        assert pointer["through_poll_id"] == newest  # every committed poll, as the twin
        marts = {
            f"analytics.{t}"
            for (t,) in duck.execute(
                "select table_name from information_schema.tables where table_schema = 'analytics' "
                "and table_name <> 'model_builds'"
            ).fetchall()
        }
        assert marts <= set(pointer["tables"])
        on_spark, on_duckdb = spark_tables(pointer, duck)
    differing = [relation for relation in on_duckdb if on_spark[relation] != on_duckdb[relation]]
    assert differing == []
    assert len(on_spark["analytics.backfill_runs"][1]) > 100  # the scenario is busy


def test_the_filesystem_destination_says_what_it_needs_in_one_line(tmp_path: Path) -> None:
    bucket = tmp_path / "bucket"
    no_bucket = {**lake_env(bucket), "DESTINATION__FILESYSTEM__BUCKET_URL": ""}
    del no_bucket["DESTINATION__FILESYSTEM__BUCKET_URL"]
    result = run_backfills(
        "ingest", "--team-id", "1", "--base-url", "http://127.0.0.1:9", cwd=tmp_path, **no_bucket
    )
    assert result.returncode == 78
    assert (
        "DESTINATION__FILESYSTEM__BUCKET_URL" in result.stderr
        and len(result.stderr.strip().splitlines()) == 1
    )

    other_layout = {
        **lake_env(bucket),
        "DESTINATION__FILESYSTEM__LAYOUT": "{table_name}/{load_id}/{file_id}.{ext}",
    }
    result = run_backfills(
        "ingest", "--team-id", "1", "--base-url", "http://127.0.0.1:9", cwd=tmp_path, **other_layout
    )
    assert result.returncode == 78 and "needs dlt's default layout" in result.stderr

    for command in (["report"], ["query", "select 1"]):
        result = run_backfills(*command, cwd=tmp_path, **lake_env(bucket))
        assert result.returncode == 78, command
        assert "backfills models --engine spark" in result.stderr, command
    result = run_backfills("check", cwd=tmp_path, **lake_env(bucket))  # a monitoring check's UNKNOWN
    assert result.returncode == 3 and "backfills models --engine spark" in result.stdout

    result = run_backfills("models", "--engine", "spark", cwd=tmp_path, BACKFILLS_DESTINATION="duckdb")
    assert result.returncode == 78
    assert 'destination = "filesystem"' in result.stderr

    elsewhere = {**lake_env(bucket), "SPARK__MODELS_URL": "s3://elsewhere/models"}
    result = run_backfills("models", cwd=tmp_path, **elsewhere)
    assert result.returncode == 78  # before Spark starts
    assert "models_url = 's3://elsewhere/models' must be in the bucket's file system" in result.stderr

    # an install without the lake extra: deltalake cannot be imported
    blocker = tmp_path / "no-deltalake" / "deltalake"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError(\"No module named 'deltalake'\")\n")
    without = {**lake_env(bucket), "PYTHONPATH": str(blocker.parent)}
    for command in (["ingest", "--team-id", "1", "--base-url", "http://127.0.0.1:9"], ["compact"]):
        result = run_backfills(*command, cwd=tmp_path, **without)
        assert result.returncode == 78, (command, result.stderr)
        assert result.stderr.count("\n") == 1 and "supermetrics-backfill-monitor[lake]" in result.stderr

    alerting = {**lake_env(bucket), "ALERTS__WEBHOOK_URL": "http://127.0.0.1:9/hook"}
    result = run_backfills(
        "ingest", "--team-id", "1", "--base-url", "http://127.0.0.1:9", cwd=tmp_path, **alerting
    )
    assert result.returncode == 78
    assert "alerts need a database" in result.stderr
    assert not bucket.exists()  # nothing was polled, nothing written


def test_a_load_row_cut_short_is_not_a_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """dlt writes `_dlt_loads/<schema>__<load_id>.jsonl` last; a kill in the middle of that write
    leaves half a JSON line, and the load's files must stay unread until dlt writes it again."""
    monkeypatch.setenv("DESTINATION__FILESYSTEM__BUCKET_URL", str(tmp_path / "bucket"))
    monkeypatch.setenv("SOURCES__SUPERMETRICS__API_KEY", "sim-key")
    target = Warehouse("filesystem", tmp_path / "data" / "b.duckdb", bucket_config())
    with seeded_simulator() as sim:
        ingest(target.db_path, team_ids=list(TEAMS), base_url=sim.base_url, destination="filesystem")
        sim.clock.advance(300)
        ingest(target.db_path, team_ids=list(TEAMS), base_url=sim.base_url, destination="filesystem")
    assert committed_polls(target) == 4
    lake = target.lake()
    newest = sorted(Path(lake.dataset_path, "_dlt_loads").iterdir())[-1]
    newest.write_text(newest.read_text()[:20])
    assert committed_polls(target) == 2
    assert lake.snapshot().incomplete_load == newest.stem.removeprefix("supermetrics__")


def test_a_new_spark_build_keeps_the_one_readers_were_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Build A current, build B killed half-way (its folder, never named by the pointer), build C
    finishing: A stays (readers may be in it), B goes, and D (another build under way) stays."""
    from pipelines import spark

    monkeypatch.setenv("DESTINATION__FILESYSTEM__BUCKET_URL", str(tmp_path / "bucket"))
    lake = Warehouse("filesystem", tmp_path / "data" / "b.duckdb", bucket_config()).lake()
    root = spark.models_root(lake, None)
    folder = Path(spark._fs_path(root))
    names = ["build-20260101T000000000000Z", "build-20260102T000000000000Z", "build-20260103T000000000000Z"]
    names.append("build-20260104T000000000000Z")
    for name in names:
        (folder / name / "analytics" / "backfills").mkdir(parents=True)
        (folder / name / "analytics" / "backfills" / "part-0.parquet").write_bytes(b"PAR1")
    a, _, c, d = names
    spark._point_at(lake, root, a, ["analytics.backfills"], 1)
    previous = spark.current_build(lake, root)
    spark._point_at(lake, root, c, ["analytics.backfills"], 2)
    spark._remove_old_builds(lake, root, c, previous)
    assert previous == a
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith("build-")) == [a, c, d]
    assert json.loads((folder / spark.POINTER).read_text())["build"] == c


def test_a_bucket_made_by_the_previous_release_becomes_delta_tables(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three polls by release 0.2.0 into a bucket (plain Parquet), the last one's load left pending
    with its `_dlt_loads` row gone (as a kill leaves it), and a stray file of a load that never
    completed; then three polls by this release. The first run loads the pending package as the
    old release wrote it, makes every table a Delta table of the committed rows, and deletes the
    plain files: the bucket then holds what a DuckDB twin holds, no row twice, the stray none."""
    bucket, local, twin = tmp_path / "bucket", tmp_path / "data" / "b.duckdb", tmp_path / "twin" / "b.duckdb"
    env = {**lake_env(bucket), "SOURCES__SUPERMETRICS__API_KEY": sim.api_key}
    args = ["ingest", "--team-id", str(TEAM), "--base-url", sim.base_url]
    Api(sim).create(add_transfer(sim, failure_rate=0.5), days_ago(3), days_ago(1))
    target = Warehouse("filesystem", local, bucket_config_for(bucket))
    polls = Path(target.lake().table_path("polls"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOURCES__SUPERMETRICS__API_KEY", sim.api_key)
    for step in range(6):
        if step < 3:
            done = run_previous_release(tmp_path, *args, "--db", str(local), **env)
        else:
            done = run_backfills(*args, "--db", str(local), cwd=tmp_path, **env)
        assert done.returncode == 0, done.stderr
        ingest(twin, team_ids=[TEAM], base_url=sim.base_url, build_models=False, destination="duckdb")
        if step == 2:
            assert not (polls / "_delta_log").exists()  # the old release's plain files
            put_last_load_back(local, forget_in_database=True, target=target)
            stray = polls / "1700000000.000001.0123456789.parquet"  # a load with no _dlt_loads row
            shutil.copy(sorted(polls.glob("*.parquet"))[0], stray)
        if step == 3:
            assert "made the plain Parquet of an older release Delta tables" in done.stderr
        sim.clock.advance(300)
    with target.read_lake() as lake:
        assert_equal(lake.raw, "?", twin, with_models=False)  # none twice
        assert lake.rows(f"select count(*) from {DATASET_NAME}.polls")[0][0] == 6
    dataset = Path(target.lake().dataset_path)
    for folder in (p for p in dataset.iterdir() if p.is_dir() and not p.name.startswith("_dlt")):
        assert (folder / "_delta_log").is_dir(), folder.name
        assert not list(folder.glob("1*.parquet")), f"{folder.name} keeps plain files"


def test_runs_compact_by_their_rule_and_compact_does_it_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `[lake] compact_after_files = 2` no table holds more than 3 files after a run, and the
    rows stay; `backfills compact --retention-hours 0` leaves each table one file and deletes the
    files no commit names (a write cut short included); it waits for a run's lock, refuses a
    database destination and a retention that is not a whole number, each in one line."""
    from pipelines.lock import RunLock

    bucket, local = tmp_path / "bucket", tmp_path / "data" / "b.duckdb"
    env = {**lake_env(bucket), "LAKE__COMPACT_AFTER_FILES": "2"}
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DESTINATION__FILESYSTEM__BUCKET_URL", str(bucket))
    target = Warehouse("filesystem", local, bucket_config())
    with seeded_simulator() as sim:
        args = ["ingest", "--base-url", sim.base_url, "--db", str(local), *[f"--team-id={t}" for t in TEAMS]]
        for _ in range(4):
            result = run_backfills(*args, cwd=tmp_path, **env)
            assert result.returncode == 0, result.stderr
            sim.clock.advance(300)
            files = {table: len(delta.file_uris()) for table, delta in target.lake().delta_tables().items()}
            assert max(files.values()) <= 3, files
    raw = [*RAW_TABLES, CHILD_TABLE]
    with target.read_lake() as lake:
        before = tables(lake.raw, DATASET_NAME, raw, "?")
        assert len(before["polls"]) == 8
    orphan = half_written_file(target)

    with RunLock(target.working_dir()):
        locked = run_backfills("compact", "--db", str(local), cwd=tmp_path, **env)
    assert locked.returncode == 73, locked.stderr
    result = run_backfills("compact", "--db", str(local), "--retention-hours", "0", cwd=tmp_path, **env)
    assert result.returncode == 0, result.stderr
    assert "compacted polls: " in result.stdout and " -> 1 file(s)" in result.stdout
    for delta in target.lake().delta_tables().values():
        assert len(delta.file_uris()) <= 1
        live = {Path(uri).name for uri in delta.file_uris()}
        on_disk = {p.name for p in Path(delta.table_uri.removeprefix("file://")).glob("*.parquet")}
        assert on_disk == live  # vacuumed: no file of an older version, no orphan
    assert not orphan.exists()
    with target.read_lake() as lake:
        assert tables(lake.raw, DATASET_NAME, raw, "?") == before

    on_duckdb = run_backfills("compact", cwd=tmp_path, BACKFILLS_DESTINATION="duckdb")
    assert on_duckdb.returncode == 78 and "compact is for the Delta tables" in on_duckdb.stderr
    unreadable = {**env, "LAKE__RETENTION_HOURS": "soon"}
    for command in (["compact", "--db", str(local)], args):  # the run stops before it polls
        bad = run_backfills(*command, cwd=tmp_path, **unreadable)
        assert bad.returncode == 78
        assert bad.stderr.strip().endswith("retention_hours = 'soon' must be a whole number of at least 0")
    with target.read_lake() as lake:
        assert tables(lake.raw, DATASET_NAME, raw, "?") == before  # nothing loaded


def test_an_aborted_load_leaves_no_row_in_any_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rows a load dlt aborts had committed (root tables by `_dlt_load_id`, the child table
    through its parent) are deleted; a completed load is never touched."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DESTINATION__FILESYSTEM__BUCKET_URL", str(tmp_path / "bucket"))
    monkeypatch.setenv("SOURCES__SUPERMETRICS__API_KEY", "sim-key")
    target = Warehouse("filesystem", tmp_path / "data" / "b.duckdb", bucket_config())
    with seeded_simulator() as sim:
        for _ in range(3):
            ingest(target.db_path, team_ids=list(TEAMS), base_url=sim.base_url, destination="filesystem")
            sim.clock.advance(300)
    raw = [*RAW_TABLES, CHILD_TABLE]
    with target.read_lake() as lake:
        before = {table: lake.rows(f"select count(*) from {DATASET_NAME}.{table}")[0][0] for table in raw}
        aborted = lake.rows(  # the newest load with error reports
            f"select max(v._dlt_load_id) from {DATASET_NAME}.backfill_versions as v "
            f"join {DATASET_NAME}.{CHILD_TABLE} as e on e._dlt_parent_id = v._dlt_id"
        )[0][0]
        of_load = {
            table: lake.rows(f"select count(*) from {DATASET_NAME}.{table} where _dlt_load_id = ?", aborted)[
                0
            ][0]
            for table in RAW_TABLES
        }
        children = lake.rows(
            f"select count(*) from {DATASET_NAME}.{CHILD_TABLE} where _dlt_parent_id in "
            f"(select _dlt_id from {DATASET_NAME}.backfill_versions where _dlt_load_id = ?)",
            aborted,
        )[0][0]
    assert of_load["polls"] == 2 and of_load["backfill_versions"] > 0 and children > 0

    assert target.discard([aborted]) == 0  # completed: kept
    Path(target.lake().dataset_path, "_dlt_loads", f"supermetrics__{aborted}.jsonl").unlink()
    assert target.discard([aborted]) == sum(of_load.values())
    with target.read_lake() as lake:
        after = {table: lake.rows(f"select count(*) from {DATASET_NAME}.{table}")[0][0] for table in raw}
    expected = {table: before[table] - of_load.get(table, 0) for table in raw}
    expected[CHILD_TABLE] = before[CHILD_TABLE] - children
    assert after == expected


def test_a_table_whose_files_alone_are_not_the_table_is_told_apart(tmp_path: Path) -> None:
    """The Spark build reads a snapshot's Parquet files where Spark has no Delta; a table another
    engine gave deletion vectors cannot be read so, and is told apart (the build then says so)."""
    import pyarrow as pa
    from deltalake import DeltaTable, TableFeatures, write_deltalake

    from pipelines.lake import features_beyond_files

    write_deltalake(str(tmp_path / "t"), pa.table({"a": [1, 2]}))
    assert features_beyond_files(DeltaTable(str(tmp_path / "t"))) == []  # as this pipeline writes
    DeltaTable(str(tmp_path / "t")).alter.add_feature(
        TableFeatures.DeletionVectors, allow_protocol_versions_increase=True
    )
    assert features_beyond_files(DeltaTable(str(tmp_path / "t"))) == ["deletionVectors"]

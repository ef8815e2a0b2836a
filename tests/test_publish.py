"""BI tools read a published copy that never blocks ingest."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
from cli_process import ingest_args, run_backfills
from conftest import Api, Warehouse, add_transfer, days_ago

from benchmarks.history import generate  # the benchmarks' year of history, shorter
from pipelines.database import limit_memory
from pipelines.engines import Warehouse as Target
from pipelines.incremental import SCOPE_LOG_BUILDS
from pipelines.ingest import open_pipeline, rebuild_models
from pipelines.models import build, table_scopes
from pipelines.publish import publish, published_db, published_dir, published_live_db, published_parquet_dir
from pipelines.simulator import Simulator

READER = """
import duckdb, sys
con = duckdb.connect(sys.argv[1], read_only=True)   # a dashboard holding the file open
print(con.execute("select count(*) from analytics.polls").fetchone()[0], flush=True)
sys.stdin.readline()                                 # ... while ingest runs
print(con.execute("select count(*) from analytics.polls").fetchone()[0], flush=True)
"""


def test_ingest_succeeds_while_a_reader_holds_the_published_copy(
    sim: Simulator, api: Api, warehouse: Warehouse
) -> None:
    api.create(add_transfer(sim), days_ago(2), days_ago(1))
    warehouse.ingest()
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(published_db(warehouse.db_path))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "1"
        sim.clock.advance(60)
        result = run_backfills(
            *ingest_args(sim.base_url, warehouse.db_path),
            cwd=warehouse.db_path.parent,
            SOURCES__SUPERMETRICS__API_KEY=sim.api_key,
        )
        assert result.returncode == 0, result.stderr
        assert "published for BI tools" in result.stdout
        reader.stdin.write("\n")
        reader.stdin.flush()
        assert reader.stdout.readline().strip() == "1"  # its open file is the old copy, still whole
    finally:
        reader.communicate(timeout=30)
    with duckdb.connect(str(published_db(warehouse.db_path)), read_only=True) as con:
        assert (
            con.execute("select count(*) from analytics.polls").fetchone()[0] == 2
        )  # a new reader: new data


def test_parquet_files_hold_every_analytics_table(sim: Simulator, api: Api, warehouse: Warehouse) -> None:
    api.create(add_transfer(sim, failure_rate=1.0), days_ago(3), days_ago(1))
    sim.clock.advance(600)
    warehouse.ingest()
    parquet_dir = published_dir(warehouse.db_path) / warehouse.db_path.stem  # its own folder
    tables = [
        t
        for (t,) in warehouse.rows(
            "select table_name from information_schema.tables where table_schema = 'analytics' order by 1"
        )
    ]
    by_poll = [table for table, scope in table_scopes().items() if scope == "polls"]
    assert sorted(by_poll) == ["backfill_progress", "polls"]
    assert sorted(p.stem for p in parquet_dir.glob("*.parquet")) == sorted(set(tables) - set(by_poll))
    for table in by_poll:  # a file per UTC day, and the schema
        assert sorted(p.name for p in (parquet_dir / table).iterdir()) == [
            "2026-01-05.parquet",
            "_empty.parquet",
        ]
    assert not list(parquet_dir.glob("**/.*"))
    # nothing hidden is left behind but the copy the published file is (see the next test)
    assert [p.name for p in published_dir(warehouse.db_path).glob(".*")] == [".backfills.1.duckdb"]
    with duckdb.connect() as con:
        for table in tables:
            files = (
                parquet_dir / table / "*.parquet" if table in by_poll else parquet_dir / f"{table}.parquet"
            )
            parquet_rows = con.execute(f"select count(*) from '{files}'").fetchone()[0]
            assert parquet_rows == warehouse.rows(f"select count(*) from analytics.{table}")[0][0], table
    assert warehouse.rows("select count(*) from analytics.backfill_errors") == [(3,)]


def test_published_copy_is_replaced_not_rewritten(sim: Simulator, api: Api, warehouse: Warehouse) -> None:
    warehouse.ingest()
    first = published_db(warehouse.db_path).stat().st_ino
    warehouse.ingest()
    assert published_db(warehouse.db_path).stat().st_ino != first  # a new file moved into place
    assert Path(published_db(warehouse.db_path)).name == warehouse.db_path.name


def test_two_copies_take_turns_and_a_reader_holding_one_costs_only_a_copy(
    sim: Simulator, api: Api, warehouse: Warehouse
) -> None:
    published = published_db(warehouse.db_path)
    copies = [published.with_name(f".backfills.{n}.duckdb") for n in (1, 2)]

    def inode(path: Path) -> int:
        return path.stat().st_ino

    warehouse.ingest()  # copy 1 made, and published
    warehouse.ingest()  # copy 2 made (a copy of copy 1's file, brought up to date), and published
    first, second = inode(copies[0]), inode(copies[1])
    assert inode(published) == second
    warehouse.ingest()  # copy 1 brought up to date where it is: no file is copied
    assert (inode(published), inode(copies[0]), inode(copies[1])) == (first, first, second)

    reader = subprocess.Popen(  # holds copy 1 (3 polls) past the next two publishes
        [sys.executable, "-c", READER, str(published)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "3"
        warehouse.ingest()  # copy 2, in place
        assert inode(published) == second
        warehouse.ingest()  # copy 1 is held: it starts again as a copy of the published file
        assert inode(published) == inode(copies[0]) != first
        reader.stdin.write("\n")
        reader.stdin.flush()
        assert reader.stdout.readline().strip() == "3"  # the reader's file never changed under it
    finally:
        reader.communicate(timeout=30)
    with duckdb.connect(str(published), read_only=True) as con:
        assert con.execute("select count(*) from analytics.polls").fetchone() == (5,)
    warehouse.ingest()  # and turns again without copying
    assert inode(published) == second


def test_each_database_publishes_into_its_own_folder(sim: Simulator, tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {"SOURCES__SUPERMETRICS__API_KEY": sim.api_key}
    assert (
        run_backfills(*ingest_args(sim.base_url, data / "team.duckdb"), cwd=tmp_path, **env).returncode == 0
    )
    demo = run_backfills("demo", "--db", str(data / "demo.duckdb"), "--days", "0.1", cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr
    assert (
        f"For BI tools: {data / 'published' / 'demo.duckdb'}, {data / 'published' / 'demo'}/ (Parquet), "
        f"{data / 'published' / 'demo-live.duckdb'}" in demo.stdout
    )
    again = run_backfills("demo", "--db", str(data / "demo.duckdb"), "--days", "0.1", cwd=tmp_path)
    assert again.returncode == 0, again.stderr  # remaking the demo removes only what the demo published
    assert (data / "published" / "team.duckdb").exists() and (
        data / "published" / "team-live.duckdb"
    ).exists()
    assert (data / "published" / "team" / "backfills.parquet").exists()
    assert (data / "published" / "demo" / "backfills.parquet").exists()


def test_a_connection_kept_open_sees_each_publish_through_the_live_views(
    sim: Simulator, api: Api, warehouse: Warehouse
) -> None:
    warehouse.ingest()
    pooled_live = duckdb.connect(str(published_live_db(warehouse.db_path)), read_only=True)
    pooled_copy = duckdb.connect(str(published_db(warehouse.db_path)), read_only=True)
    try:
        count = "select count(*) from analytics.polls"
        assert pooled_live.execute(count).fetchone() == pooled_copy.execute(count).fetchone() == (1,)
        api.create(add_transfer(sim), days_ago(2), days_ago(1))
        warehouse.ingest()  # publishes again while both connections stay open
        assert pooled_live.execute(count).fetchone() == (2,)  # the views read the new files
        assert pooled_copy.execute(count).fetchone() == (1,)  # the copy it opened, whole, until reconnect
        assert pooled_live.execute("select count(*) from analytics.backfills").fetchone() == (1,)
    finally:
        pooled_live.close()
        pooled_copy.close()


def published_tables(db: Path) -> dict[str, list[tuple]]:
    """Every table of the published copy, of the Parquet files (through the live views) and of
    the database itself, sorted."""
    out = {}
    for name, path in (("source", db), ("copy", published_db(db)), ("parquet", published_live_db(db))):
        with duckdb.connect(str(path), read_only=True) as con:
            for (table,) in con.execute(
                "select table_name from information_schema.tables where table_schema = 'analytics'"
            ).fetchall():
                out[f"{name}:{table}"] = con.execute(
                    f"select * from analytics.{table} order by all"
                ).fetchall()
    return out


def assert_published_as_built(db: Path) -> None:
    """The published copy and the Parquet files hold every table's rows exactly."""
    tables = published_tables(db)
    for key, rows in tables.items():
        if key.startswith("source:"):
            table = key.split(":")[1]
            assert tables[f"copy:{table}"] == rows and tables[f"parquet:{table}"] == rows, table


def test_publishing_appends_new_polls_and_stays_equal_to_the_tables(
    sim: Simulator, api: Api, warehouse: Warehouse
) -> None:
    api.create(add_transfer(sim, failure_rate=0.5), days_ago(30), days_ago(1))
    for _ in range(4):  # 08:00 to 23:00 on 5 January
        warehouse.ingest()
        sim.clock.advance(5 * 3600)
    first_day = published_parquet_dir(warehouse.db_path) / "backfill_progress" / "2026-01-05.parquet"
    written = first_day.stat().st_mtime_ns
    warehouse.ingest()  # 04:00 on 6 January: appended, the 5th's file stays as it was
    assert warehouse.ingest().published.full is False
    assert first_day.stat().st_mtime_ns == written
    assert (first_day.parent / "2026-01-06.parquet").exists()
    assert_published_as_built(warehouse.db_path)
    built, published = rebuild_models(warehouse.db_path, full_refresh=True)
    assert published.full is True  # old rows may have changed: everything again
    assert first_day.stat().st_mtime_ns != written


def test_a_publish_copies_only_what_the_builds_since_its_copy_wrote(
    sim: Simulator, api: Api, warehouse: Warehouse
) -> None:
    api.create(add_transfer(sim, run_seconds=100), days_ago(2), days_ago(1))  # two runs
    assert warehouse.ingest().published.full is True  # the first copy: every table
    assert warehouse.ingest().published.full is False  # the second: a copy of the first's file, updated
    copied = warehouse.ingest().published.copied  # listed: its rows are replaced, by backfill
    assert (copied["polls"], copied["backfills"], copied["backfill_errors"]) == (
        "appended",
        "by backfill",
        "by backfill",
    )
    assert copied["model_builds"] == "whole"
    sim.clock.advance(3600)  # it finishes and leaves the list
    warehouse.ingest()
    assert warehouse.rows("select status from analytics.backfills") == [("COMPLETED",)]
    backfills_file = published_parquet_dir(warehouse.db_path) / "backfills.parquet"
    written = backfills_file.stat().st_mtime_ns
    assert warehouse.ingest().published.copied["backfills"] == "by backfill"  # this copy lacks the finish
    assert backfills_file.stat().st_mtime_ns != written
    written = backfills_file.stat().st_mtime_ns
    copied = warehouse.ingest().published.copied  # no build since this copy's publish wrote it
    assert (copied["backfills"], copied["backfill_status_history"]) == ("kept", "kept")
    assert backfills_file.stat().st_mtime_ns == written
    assert_published_as_built(warehouse.db_path)


def test_the_publish_after_a_full_refresh_starts_from_the_file_that_one_made(
    sim: Simulator, api: Api, warehouse: Warehouse
) -> None:
    """Each copy needs every table after a full refresh; the second copies the file the first
    made (one file copy), then only what the build since wrote."""
    api.create(add_transfer(sim, run_seconds=100), days_ago(2), days_ago(1))
    for _ in range(3):
        warehouse.ingest()
    _, published = rebuild_models(warehouse.db_path, full_refresh=True)
    assert published.full is True
    copied = warehouse.ingest().published
    assert copied.full is False
    assert (copied.copied["polls"], copied.copied["backfills"]) == ("appended", "by backfill")
    assert_published_as_built(warehouse.db_path)


def test_a_copy_more_builds_behind_than_are_remembered_is_copied_whole(
    sim: Simulator, api: Api, warehouse: Warehouse
) -> None:
    api.create(add_transfer(sim, run_seconds=100), days_ago(2), days_ago(1))
    for _ in range(3):
        warehouse.ingest()
    pipeline, engine = open_pipeline(warehouse.db_path), Target("duckdb", warehouse.db_path)
    for _ in range(SCOPE_LOG_BUILDS):  # builds nothing published: the spare copy misses one more
        build(pipeline, "supermetrics", engine)
    copied = publish(warehouse.db_path, table_scopes()).copied
    assert (copied["backfills"], copied["alert_events"]) == ("whole", "whole")
    assert copied["polls"] == "appended"
    tables = published_tables(warehouse.db_path)
    assert all(
        tables[key.replace("source:", "copy:")] == rows for key, rows in tables.items() if "source:" in key
    )


def test_a_copy_it_cannot_open_is_published_anew(sim: Simulator, api: Api, warehouse: Warehouse) -> None:
    warehouse.ingest()
    published_db(warehouse.db_path).write_bytes(b"not a DuckDB file")  # damaged, or another version's
    assert warehouse.ingest().published.full is True
    with duckdb.connect(str(published_db(warehouse.db_path)), read_only=True) as con:
        assert con.execute("select count(*) from analytics.polls").fetchone() == (2,)


def test_publishing_everything_is_not_held_to_a_runs_memory_cap(tmp_path: Path) -> None:
    # A first publish, or each copy's after a full refresh, writes a day file for every day of the
    # history at once: under a run's cap that failed (exit 74, and again at every run)
    db = tmp_path / "history.duckdb"
    generate(db, polls=60 * 288)  # 60 days of 20 backfills changing at every poll
    rebuild_models(db, full_refresh=True)
    shutil.rmtree(published_dir(db))
    with duckdb.connect(str(db)) as run:  # the run's connection, as ingest holds it
        limit_memory(run, "16MB")
        capped = run.execute("select current_setting('memory_limit')").fetchone()[0]
        assert publish(db, table_scopes(), memory_limit="16MB").full is True
        assert run.execute("select current_setting('memory_limit')").fetchone()[0] == capped  # back
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute("select count(*) from analytics.backfill_progress").fetchone()[0]
        for reader in (published_db(db), published_live_db(db)):  # the copy, the Parquet files
            con.execute(f"attach '{reader}' as reader (read_only)")
            missing = con.execute(
                "select count(*) from (select * from analytics.backfill_progress "
                "except all select * from reader.analytics.backfill_progress)"
            ).fetchone()[0]
            assert missing == 0
            published = con.execute("select count(*) from reader.analytics.backfill_progress").fetchone()[0]
            assert published == rows
            con.execute("detach reader")
    assert rows > 300_000

"""The model runner: order from the SQL, data tests that stop a bad build, the data dictionary."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import duckdb
import pytest
from cli_process import ingest_args, run_backfills
from conftest import Api, Warehouse, add_transfer, days_ago
from test_ground_truth import assert_full_refresh_equals_incremental

from benchmarks.history import generate
from pipelines.database import BUILD_SETTINGS
from pipelines.incremental import SCOPES
from pipelines.ingest import rebuild_models
from pipelines.models import SQL_DIR, data_tests, dictionary_markdown, discover
from pipelines.simulator import Simulator
from pipelines.supermetrics.errors import ModelError

ROOT = Path(__file__).resolve().parents[1]


def write(folder: Path, name: str, sql: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.sql").write_text(sql)


def test_build_order_comes_from_the_sql(tmp_path: Path) -> None:
    write(tmp_path / "marts", "b", "select * from analytics.a join staging.s using (x)")
    write(tmp_path / "marts", "a", "with t as (select * from staging.s) select * from t")
    write(tmp_path / "staging", "s", "select 1 as x from supermetrics.polls")
    assert [m.relation for m in discover(tmp_path, {})] == ["staging.s", "analytics.a", "analytics.b"]


def test_unknown_relation_and_cycles_are_errors(tmp_path: Path) -> None:
    write(tmp_path / "marts", "a", "select * from analytics.nope")
    with pytest.raises(ModelError, match="a.sql reads analytics.nope, which no model builds"):
        discover(tmp_path, {})
    write(tmp_path / "marts", "a", "select * from analytics.b")
    write(tmp_path / "marts", "b", "select * from analytics.a")
    with pytest.raises(ModelError, match="cycle"):
        discover(tmp_path, {})


def test_scoped_rows_is_the_one_scope_filter(tmp_path: Path) -> None:
    """`{{ scoped_rows(relation, scope) }}` reads a relation's rows of the build's scope, and on a
    full refresh every row, without the scope table; the scope table is not a dependency, and a
    scope that does not exist is an error naming the file."""
    write(tmp_path / "staging", "s", "select 1 as team_id, 2 as transfer_backfill_id")
    write(tmp_path / "marts", "a", "with t as ({{ scoped_rows(staging.s, backfills) }}) select * from t")
    staging, mart = discover(tmp_path, {})
    assert mart.depends_on == {"staging.s"}
    assert "from staging.s as scoped" in mart.sql and "staging.scope_backfills as in_scope" in mart.sql
    assert "in_scope.transfer_backfill_id = scoped.transfer_backfill_id" in mart.sql
    with duckdb.connect() as con:  # it runs: every row whose keys the scope table holds
        con.execute("create schema staging")
        con.execute(f"create table staging.s as {staging.sql}")
        con.execute("create table staging.scope_backfills as select 1 as team_id, 2 as transfer_backfill_id")
        assert con.execute(mart.sql).fetchall() == [(1, 2)]
        con.execute("delete from staging.scope_backfills")
        assert con.execute(mart.sql).fetchall() == []
        con.execute("drop table staging.scope_backfills")
        assert con.execute(mart.full_refresh_sql).fetchall() == [(1, 2)]
    write(tmp_path / "marts", "a", "select * from ({{ scoped_rows(staging.s, teams) }}) as t")
    with pytest.raises(ModelError, match="a.sql: scoped_rows: teams is not one of polls, backfills"):
        discover(tmp_path, {})
    write(tmp_path / "marts", "a", "select * from ({{ scoped_rows(staging.s, polls, poll_id) }}) as t")
    with pytest.raises(
        ModelError, match="a.sql: scoped_rows: only the backfills scope reads from a first poll"
    ):
        discover(tmp_path, {})


def test_scoped_rows_from_each_backfills_first_stored_poll(tmp_path: Path) -> None:
    """With a poll column, a backfill's rows are read from its first stored poll on (the scope
    table's from_poll_id), and still every row on a full refresh."""
    write(
        tmp_path / "staging",
        "s",
        "select * from (values (1, 2, 5), (1, 2, 7), (1, 3, 6)) as v "
        "(team_id, transfer_backfill_id, poll_id)",
    )
    write(
        tmp_path / "marts",
        "a",
        "select * from ({{ scoped_rows(staging.s, backfills, poll_id) }}) as t order by all",
    )
    staging, mart = discover(tmp_path, {})
    assert "scoped.poll_id >= in_scope.from_poll_id" in mart.sql
    with duckdb.connect() as con:
        con.execute("create schema staging")
        con.execute(f"create table staging.s as {staging.sql}")
        con.execute(
            "create table staging.scope_backfills as select * from (values (1, 2, 6), (1, 3, 0)) as v "
            "(team_id, transfer_backfill_id, from_poll_id)"
        )
        assert con.execute(mart.sql).fetchall() == [(1, 2, 7), (1, 3, 6)]
        con.execute("drop table staging.scope_backfills")
        assert con.execute(mart.full_refresh_sql).fetchall() == [(1, 2, 5), (1, 2, 7), (1, 3, 6)]


def test_a_view_that_reads_through_scoped_rows_reads_every_row(sim: Simulator, tmp_path: Path) -> None:
    # A view is read after its build, when the scope tables hold another build's scope (and a
    # full refresh makes none): it reads every row, on the first build and on those after it.
    sql = tmp_path / "sql"
    shutil.copytree(ROOT / "sql", sql)
    (sql / "staging" / "stg_every_poll.sql").write_text("{{ scoped_rows(supermetrics.polls, polls) }}\n")
    db = tmp_path / "b.duckdb"
    env = {"SOURCES__SUPERMETRICS__API_KEY": sim.api_key, "BACKFILLS_SQL_DIR": str(sql)}
    for polls in (1, 2):  # a full refresh (the first build), then an incremental one
        sim.clock.advance(300)
        result = run_backfills(*ingest_args(sim.base_url, db), cwd=tmp_path, **env)
        assert result.returncode == 0, result.stderr
        with duckdb.connect(str(db), read_only=True) as con:
            assert con.execute("select count(*) from staging.stg_every_poll").fetchone()[0] == polls
            builds = con.execute("select mode from analytics.model_builds order by finished_at").fetchall()
        assert [mode for (mode,) in builds] == ["full", "incremental"][:polls]


def test_real_models_are_ordered_after_what_they_read() -> None:
    order = [m.relation for m in discover()]
    for position, model in enumerate(discover()):
        assert all(order.index(dep) < position for dep in model.depends_on), model.relation
    assert len([r for r in order if r.startswith("analytics.")]) == 12  # 11 marts and alert_events


def test_every_mart_column_is_in_the_dictionary(sim: Simulator, api: Api, warehouse: Warehouse) -> None:
    api.create(add_transfer(sim, failure_rate=1.0), days_ago(2), days_ago(1))
    sim.clock.advance(500)
    warehouse.ingest()
    for model in discover():
        if model.schema != "analytics":
            continue
        assert model.doc, f"{model.name} has no YAML beside it"
        columns = [
            c
            for (c,) in warehouse.rows(
                "select column_name from information_schema.columns where table_schema = 'analytics' "
                "and table_name = ? order by ordinal_position",
                model.name,
            )
        ]
        assert list(model.doc["columns"]) == columns, model.name
        assert data_tests(model), f"{model.name} has no data tests"
    assert (ROOT / "docs" / "models.md").read_text() == dictionary_markdown(), "run make docs"


def test_every_join_of_the_models_is_a_hash_join(sim: Simulator, api: Api, warehouse: Warehouse) -> None:
    # An ASOF join's plan depended on DuckDB's estimates: on tiny ones it was a nested loop,
    # quadratic in the real sizes (a full refresh of one team's year took 533 s). The models
    # now join on equality only (as-of joins are running maxima then equi-joins), so no plan
    # depends on an estimate. backfill_progress's one-row scalar subqueries (the first new
    # poll, the newest poll) are its only other joins.
    api.create(add_transfer(sim), days_ago(2), days_ago(1))
    sim.clock.advance(500)
    warehouse.ingest()
    sim.clock.advance(300)
    warehouse.ingest()  # an incremental build: its scope tables are there
    one_row_sides = {"Cross Product", "Nested Loop Join"}
    with duckdb.connect(str(warehouse.db_path)) as con:
        for setting in BUILD_SETTINGS:
            con.execute(setting)
        for model in discover():
            for sql in (model.sql, model.full_refresh_sql):
                plan = "".join(row[1] for row in con.execute(f"explain {sql}").fetchall())
                joins = set(re.findall(r"─ ([A-Za-z ]*(?:Join|Product)) ─", plan)) - {"Hash Join"}
                allowed = one_row_sides if model.name == "backfill_progress" else set()
                assert joins <= allowed, (model.relation, joins)


def test_a_build_times_each_model_and_its_data_tests(sim: Simulator, api: Api, warehouse: Warehouse) -> None:
    # make bench profiles the builds from these (the slowest steps beside each figure)
    api.create(add_transfer(sim), days_ago(2), days_ago(1))
    sim.clock.advance(500)
    built = warehouse.ingest().built
    assert built is not None
    assert list(built.step_seconds) == [m.relation for m in discover()] + ["data tests"]
    assert all(seconds >= 0 for seconds in built.step_seconds.values())
    assert sum(built.step_seconds.values()) <= built.seconds


def test_a_run_that_lists_nothing_rebuilds_only_what_changed(
    sim: Simulator, api: Api, warehouse: Warehouse
) -> None:
    api.create(add_transfer(sim), days_ago(2), days_ago(1))
    sim.clock.advance(50)
    warehouse.ingest()  # RUNNING
    sim.clock.advance(1000)
    warehouse.ingest()  # gone from the list, looked up: COMPLETED
    sim.clock.advance(300)
    built = warehouse.ingest().built  # nothing listed, nothing incomplete
    assert built is not None and built.mode == "incremental"
    rebuilt = set(built.step_seconds)
    by_backfill = {m.relation for m in discover() if m.scope == "backfills"}
    assert by_backfill and not by_backfill & rebuilt
    assert {"analytics.polls", "analytics.freshness", "analytics.backfill_progress"} <= rebuilt
    assert "analytics.transfer_failure_rates" not in rebuilt  # reads only what stayed
    assert_full_refresh_equals_incremental(warehouse.db_path)


def test_a_full_refresh_writes_the_scoped_tables_in_scope_order(
    sim: Simulator, api: Api, warehouse: Warehouse
) -> None:
    # Each row group's min and max then cover few backfills (or polls), and the next run's scan
    # of its scope skips the rest; a window's output comes in hash-partition order otherwise.
    for transfer in (add_transfer(sim, failure_rate=0.3) for _ in range(4)):
        for days in ((9, 8), (6, 5), (3, 2)):
            api.create(transfer, days_ago(days[0]), days_ago(days[1]))
    for _ in range(3):
        sim.clock.advance(400)
        warehouse.ingest()
    built, _ = rebuild_models(warehouse.db_path, full_refresh=True)
    assert built.mode == "full refresh: asked for"
    scoped = [m for m in discover() if m.scope]
    assert {m.scope for m in scoped} == set(SCOPES)
    with duckdb.connect(str(warehouse.db_path), read_only=True) as con:
        for model in scoped:
            keys = ", ".join(SCOPES[model.scope][1])
            stored = con.execute(f"select {keys} from {model.relation} order by rowid").fetchall()
            assert len(set(stored)) > 1, model.relation
            assert stored == sorted(stored), model.relation


def test_each_build_keeps_every_backfills_first_stored_poll(
    sim: Simulator, api: Api, warehouse: Warehouse
) -> None:
    # A run reads a backfill's raw rows from its first stored poll on: that poll must be the first
    # of any of its rows, for the backfills of every build (new ones added by the incremental ones)
    first = api.create(add_transfer(sim), days_ago(9), days_ago(1))["transfer_backfill_id"]
    sim.clock.advance(50)
    warehouse.ingest()  # the first build: a full refresh
    sim.clock.advance(300)
    warehouse.ingest()
    later = api.create(add_transfer(sim), days_ago(3), days_ago(1))["transfer_backfill_id"]
    sim.clock.advance(300)
    warehouse.ingest()  # an incremental build adds the later backfill
    polls = [p for (p,) in warehouse.rows("select poll_id from supermetrics.polls order by poll_id")]
    kept = dict(
        warehouse.rows("select transfer_backfill_id, first_poll_id from staging.backfill_first_polls")
    )
    assert kept == {first: polls[0], later: polls[2]}
    modes = [m for (m,) in warehouse.rows("select mode from analytics.model_builds order by finished_at")]
    assert modes == ["full", "incremental", "incremental"]
    assert_full_refresh_equals_incremental(warehouse.db_path)


def test_a_run_skips_the_raw_row_groups_before_its_backfills_first_polls(tmp_path: Path) -> None:
    # The raw versions are stored in poll order: a run that reads its few backfills' versions
    # scans the row groups of their polls, not the history (at 50 teams' year it scanned 21 M rows).
    # Two teams, whose backfill ids lie far apart: every row group holds ids of both, so that the
    # ids alone skip nothing
    db = tmp_path / "history.duckdb"
    polls = 40 * 288  # 20 backfills a team changing at every poll: four row groups of versions
    generate(db, polls=polls, teams=2)
    rebuild_models(db, full_refresh=True)
    generate(db, polls=polls + 1, teams=2)
    built, _ = rebuild_models(db)
    assert built.mode == "incremental"
    [model] = [m for m in discover() if m.name == "int_backfill_versions_sequenced"]
    with duckdb.connect(str(db)) as con:
        plan = "".join(row[1] for row in con.execute(f"explain analyze {model.sql}").fetchall())
        [total] = con.execute(
            "select count(distinct row_group_id) from pragma_storage_info('supermetrics.backfill_versions')"
        ).fetchone()
    scanned = [
        int(read) for read, of in re.findall(r"Row Groups Scanned: (\d+) / (\d+)", plan) if int(of) == total
    ]
    assert total >= 4 and scanned and all(read <= 2 for read in scanned), (total, scanned)


def test_a_failing_data_test_stops_the_build_and_keeps_the_old_tables(
    sim: Simulator, api: Api, warehouse: Warehouse
) -> None:
    api.create(add_transfer(sim), days_ago(2), days_ago(1))
    warehouse.ingest()
    with duckdb.connect(str(warehouse.db_path)) as con:  # a duplicated raw poll: the grain breaks
        con.execute("insert into supermetrics.polls select * from supermetrics.polls")
    # an incremental build checks the rows it adds: the old poll doubled is no new row
    incremental = run_backfills("models", "--db", str(warehouse.db_path), cwd=warehouse.db_path.parent)
    assert incremental.returncode == 0, incremental.stderr
    # a full refresh rebuilds and checks every row
    result = run_backfills(
        "models", "--full-refresh", "--db", str(warehouse.db_path), cwd=warehouse.db_path.parent
    )
    assert result.returncode == 70
    [line] = result.stderr.splitlines()
    assert (
        line.startswith("backfills: model error: ")
        and "analytics.polls: grain (poll_id) is unique (1 rows)" in line
    )
    assert warehouse.rows("select count(*) from analytics.polls") == [
        (1,)
    ]  # rolled back: the last good build


def test_models_command(sim: Simulator, api: Api, warehouse: Warehouse, tmp_path: Path) -> None:
    missing = run_backfills("models", "--db", str(tmp_path / "none.duckdb"), cwd=tmp_path)
    assert missing.returncode == 78 and "run backfills ingest first" in missing.stderr
    warehouse.ingest()
    rebuilt = run_backfills("models", "--db", str(warehouse.db_path), cwd=tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert rebuilt.stdout.startswith(f"models: {len(discover())} built (incremental), ")
    full = run_backfills("models", "--full-refresh", "--db", str(warehouse.db_path), cwd=tmp_path)
    assert full.returncode == 0, full.stderr
    assert full.stdout.startswith(f"models: {len(discover())} built (full refresh: asked for), ")


def test_a_backlog_of_more_polls_than_were_built_is_built_whole(
    sim: Simulator, warehouse: Warehouse, tmp_path: Path
) -> None:
    def build() -> str:
        result = run_backfills("models", "--db", str(warehouse.db_path), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        return result.stdout.split(" built ")[1].split(",")[0]

    warehouse.ingest()  # poll 1, built
    warehouse.build_models = False  # as when builds fail for a while: the polls load all the same
    warehouse.ingest()
    assert build() == "(incremental)"  # one new poll, one built
    for _ in range(3):
        warehouse.ingest()
    assert build() == "(full refresh: more polls are new than built)"  # 3 new, 2 built
    assert build() == "(incremental)"


def test_sql_dir_is_the_repository_one() -> None:
    assert SQL_DIR == ROOT / "sql"

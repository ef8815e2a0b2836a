"""The same pipeline on a real PostgreSQL server: the same tables as DuckDB, row for row.

One seeded simulated history is ingested twice, into a DuckDB file and into a fresh PostgreSQL
database (two simulators of the same seed, moved in lockstep, give both the same answers), with
the models built after every run (incrementally, as cron runs them). Every raw and analytics
table must then hold the same rows on both engines; what may differ is only what differs between
any two runs: dlt's ids and this machine's clock.
"""

from __future__ import annotations

import json
import math
import random
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb
import psycopg2
import pytest
from cli_process import BACKFILLS, backfills_env, run_backfills
from conftest import RAW_TABLES
from postgres_server import Database, postgres_database, postgres_server, postgres_url  # noqa: F401
from receiver import Receiver
from support import put_last_load_back
from test_chaos import ENV, MODES, kill_a_run
from test_watch import Watch

from pipelines import analysis
from pipelines.engines import AdvisoryLock, Warehouse, postgres_credentials
from pipelines.ingest import ingest, rebuild_models
from pipelines.simulator import Simulator, Timing, Workload
from pipelines.supermetrics.settings import DATASET_NAME

TEAMS = (101, 102)
RUNS = 10
# differ between any two runs given the same answers: dlt's ids, this machine's clock, the
# per-request headers
VOLATILE = {
    "_dlt_id",
    "_dlt_load_id",
    "_dlt_parent_id",
    "received_at",
    "last_received_at",
    "last_ok_received_at",
    "duration_ms",
    "request_id",
    "rate_limit_remaining",
}
CHILD_TABLE = "backfill_versions__error_report"


def seeded_simulator() -> Simulator:
    """Two busy teams: backfills queue, run, fail with error reports, are retried and cancelled."""
    workload = Workload(transfers_per_team=4, backfills_per_day=1500, cancel_probability=0.2)
    quick = Timing(runs_created_after=(10, 60), pickup_after=(10, 60), run_bounds=(5, 20))
    return Simulator(
        seed=11,
        speed=0,
        teams=TEAMS,
        workload=workload,
        warmup=timedelta(hours=3),
        timing=quick,
        max_running=6,
    )


def ingest_history(db_path: Path, destination: str) -> None:
    with seeded_simulator() as sim:
        for _ in range(RUNS):
            ingest(db_path, team_ids=list(TEAMS), base_url=sim.base_url, destination=destination)
            sim.clock.advance(600)


def normalised(value: Any) -> Any:
    """One value as both engines' drivers can return it: numbers as rounded floats, times in UTC,
    JSON as sorted text."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float | Decimal):
        number = float(value)
        return None if math.isnan(number) else round(number, 6)
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value
    if isinstance(value, timedelta | date):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.dumps(json.loads(value), sort_keys=True)
        except ValueError:
            return value
    return value


def tables(con: Any, schema: str, names: list[str], param: str) -> dict[str, list[tuple]]:
    """Each table's rows (volatile columns left out), normalised and sorted."""
    out = {}
    cursor = con.cursor()
    for name in names:
        cursor.execute(
            "select column_name from information_schema.columns where table_schema = "
            f"{param} and table_name = {param} order by column_name",
            [schema, name],
        )
        columns = [c for (c,) in cursor.fetchall() if c not in VOLATILE]
        cursor.execute(f"select {', '.join(columns)} from {schema}.{name}")
        rows = [tuple(normalised(v) for v in row) for row in cursor.fetchall()]
        out[name] = sorted(rows, key=repr)
    return out


def analytics_tables(con: Any, param: str) -> list[str]:
    cursor = con.cursor()
    cursor.execute(
        f"select table_name from information_schema.tables where table_schema = {param} "
        "and table_name <> 'model_builds' order by table_name",
        ["analytics"],
    )
    return [t for (t,) in cursor.fetchall()]


def cli_env(url: str) -> dict[str, str]:
    """What `backfills` run as a subprocess needs to work on that PostgreSQL database."""
    return {
        "BACKFILLS_DESTINATION": "postgres",
        "DESTINATION__POSTGRES__CREDENTIALS": url,
        "SOURCES__SUPERMETRICS__API_KEY": "sim-key",
    }


@pytest.fixture
def on_postgres(postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:  # noqa: F811
    monkeypatch.chdir(tmp_path)  # no .dlt/ of the repository's: config comes from env vars only
    monkeypatch.setenv("SOURCES__SUPERMETRICS__API_KEY", "sim-key")
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", postgres_url)
    return postgres_url


@pytest.mark.timeout(900)  # generous: a loaded machine makes every run slower, never wrong
@pytest.mark.slow
def test_duckdb_and_postgres_hold_the_same_tables_row_for_row(on_postgres: str, tmp_path: Path) -> None:
    duck_path = tmp_path / "data" / "backfills.duckdb"
    ingest_history(duck_path, "duckdb")
    ingest_history(tmp_path / "data" / "pg", "postgres")

    with duckdb.connect(str(duck_path), read_only=True) as duck, psycopg2.connect(on_postgres) as pg:
        marts = analytics_tables(duck, "?")
        assert marts == analytics_tables(pg, "%s")
        raw = [*RAW_TABLES, CHILD_TABLE]
        duck_raw, pg_raw = tables(duck, DATASET_NAME, raw, "?"), tables(pg, DATASET_NAME, raw, "%s")
        duck_marts, pg_marts = tables(duck, "analytics", marts, "?"), tables(pg, "analytics", marts, "%s")
        builds = pg.cursor()
        builds.execute("select mode, outcome from analytics.model_builds order by finished_at")
        pg_builds = builds.fetchall()

    # a history worth comparing: errors, lookups, runs, and every mart with rows
    assert len(duck_raw["backfill_versions"]) > 50 and duck_raw[CHILD_TABLE] and duck_raw["backfill_lookups"]
    assert duck_raw["transfer_runs"] and duck_raw["transfers"]
    assert all(duck_marts[m] for m in marts), [m for m in marts if not duck_marts[m]]
    assert pg_builds[0] == ("full", "ok") and set(pg_builds[1:]) == {("incremental", "ok")}
    for name in raw:
        assert pg_raw[name] == duck_raw[name], f"raw table {name} differs"
    for name in marts:
        assert pg_marts[name] == duck_marts[name], f"analytics.{name} differs"

    # a full refresh on PostgreSQL rebuilds exactly what the incremental builds made
    rebuild_models(tmp_path / "data" / "pg", full_refresh=True, destination="postgres")
    with psycopg2.connect(on_postgres) as pg:
        assert tables(pg, "analytics", marts, "%s") == pg_marts


@pytest.mark.timeout(600)
def test_the_cli_ingests_reports_and_queries_postgres_without_showing_the_password(
    on_postgres: str, tmp_path: Path
) -> None:
    password = postgres_credentials().password
    assert password and password in on_postgres
    env = cli_env(on_postgres)
    with seeded_simulator() as sim:
        runs = [
            run_backfills("ingest", "--team-id", "101", "--base-url", sim.base_url, cwd=tmp_path, **env)
            for _ in range(2)
        ]
    report = run_backfills("report", cwd=tmp_path, **env)
    check = run_backfills("check", cwd=tmp_path, **env)
    query = run_backfills(
        "query",
        "--format",
        "csv",
        "select count(*) as backfills from analytics.backfills",
        cwd=tmp_path,
        **env,
    )
    refused = run_backfills("query", "delete from analytics.backfills", cwd=tmp_path, **env)

    for done in (*runs, report, check, query):
        assert done.returncode == 0, done.stderr
    assert f"database postgresql://{urlsplit(on_postgres).username}@127.0.0.1:" in runs[0].stdout
    assert "published for BI tools" not in runs[0].stdout  # BI tools read the analytics schema
    assert "team 101: poll 1" in runs[0].stdout and "models:" in runs[1].stdout
    assert "Needs a person (" in report.stdout and "In progress (" in report.stdout
    assert check.stdout.startswith("OK")
    assert int(query.stdout.splitlines()[1]) > 0
    assert refused.returncode == 64 and "read-only" in refused.stderr
    frames = analysis.load(tmp_path / "data" / "pg", "postgres")  # the notebook's tables
    assert len(frames["backfills"]) == int(query.stdout.splitlines()[1])
    assert str(frames["backfills"]["created_time"].dtype) == "datetime64[us, UTC]"
    everything = "".join(p.stdout + p.stderr for p in (*runs, report, check, query, refused))
    assert password not in everything
    for path in tmp_path.rglob("*"):  # dlt's working folder included
        if path.is_file():
            assert password.encode() not in path.read_bytes(), path
    with psycopg2.connect(on_postgres) as pg:  # nor the API key or the password in any stored row
        cursor = pg.cursor()
        cursor.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema in ('supermetrics', 'staging', 'analytics') and table_type = 'BASE TABLE'"
        )
        stored = cursor.fetchall()
        assert len(stored) > 10
        for schema, table in stored:
            cursor.execute(
                f"select count(*) from {schema}.{table} as t where t::text like %s or t::text like %s",
                ["%sim-key%", f"%{password}%"],
            )
            assert cursor.fetchone()[0] == 0, f"{schema}.{table}"


def test_overlapping_runs_on_postgres_are_excluded_by_the_database(on_postgres: str, tmp_path: Path) -> None:
    target = Warehouse("postgres", tmp_path / "data" / "x", postgres_credentials())
    with seeded_simulator() as sim:
        args = ["ingest", "--team-id", "101", "--base-url", sim.base_url]

        def run(*extra: str) -> subprocess.CompletedProcess:
            return run_backfills(*args, *extra, cwd=tmp_path, **cli_env(on_postgres))

        third: list[subprocess.CompletedProcess] = []
        waiting = threading.Thread(target=lambda: third.append(run("--wait-lock", "300")))
        with AdvisoryLock(target, DATASET_NAME):  # another machine's run
            blocked, waited = run(), run("--wait-lock", "0.5")
            waiting.start()  # this one waits until the holder goes away, then goes ahead
            with psycopg2.connect(on_postgres) as watcher:  # observe it waiting for the lock
                cursor = watcher.cursor()
                ungranted = "select count(*) from pg_locks where locktype = 'advisory' and not granted"
                while cursor.execute(ungranted) or not cursor.fetchone()[0]:
                    pass
        waiting.join(timeout=300)
    for refused in (blocked, waited):
        assert refused.returncode == 73, refused.stderr
        assert "another ingest (" in refused.stderr and "is running on postgresql://" in refused.stderr
    assert third[0].returncode == 0, third[0].stderr
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").rglob("*.lock"))


@pytest.mark.timeout(600)
def test_a_bi_reader_inside_a_transaction_never_blocks_a_build(on_postgres: str, tmp_path: Path) -> None:
    db = tmp_path / "data" / "pg"
    with seeded_simulator() as sim:
        ingest(db, team_ids=[101], base_url=sim.base_url, destination="postgres")
        sim.clock.advance(3600)
        ingest(db, team_ids=[101], base_url=sim.base_url, destination="postgres")
        reader = psycopg2.connect(on_postgres)  # a dashboard: one long repeatable-read transaction
        reader.set_session(isolation_level="REPEATABLE READ")
        cursor = reader.cursor()
        cursor.execute("select count(*), max(poll_id) from analytics.polls")
        before = cursor.fetchone()
        for relation in (  # a reader holds every table and view it read until its transaction ends
            "analytics.backfills",
            "staging.stg_supermetrics__polls",
            "staging.int_backfill_current_state",
            "staging.scope_backfills",
        ):
            cursor.execute(f"select count(*) from {relation}")
        sim.clock.advance(300)
        done: list[object] = []

        def cron() -> None:  # the next scheduled run (an incremental build), then a full refresh
            done.append(ingest(db, team_ids=[101], base_url=sim.base_url, destination="postgres"))
            done.append(rebuild_models(db, full_refresh=True, destination="postgres"))

        runs = threading.Thread(target=cron)
        runs.start()
        runs.join(timeout=300)  # a blocked build waits as long as the reader: this join would time out
    assert not runs.is_alive() and len(done) == 2, "a build waited for the reader"
    cursor.execute("select count(*), max(poll_id) from analytics.polls")
    assert cursor.fetchone() == before  # the reader's snapshot: never a half-built state
    reader.rollback()
    cursor.execute("select count(*), max(poll_id) from analytics.polls")
    assert cursor.fetchone() == (before[0] + 1, before[1] + 1)  # the next reading sees the new poll
    reader.close()


def test_a_missing_password_or_a_server_down_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"BACKFILLS_DESTINATION": "postgres"}
    missing = run_backfills("report", cwd=tmp_path, **env)
    assert missing.returncode == 78
    assert "[destination.postgres] credentials" in missing.stderr and len(missing.stderr.splitlines()) == 1
    down = run_backfills(
        "ingest",
        "--team-id",
        "1",
        cwd=tmp_path,
        **env,
        DESTINATION__POSTGRES__CREDENTIALS="postgresql://u:secret-pw@127.0.0.1:9/db",
        SOURCES__SUPERMETRICS__API_KEY="sim-key",
    )
    assert down.returncode == 74 and "cannot connect to PostgreSQL at 127.0.0.1:9/db" in down.stderr
    assert "secret-pw" not in down.stderr + down.stdout and len(down.stderr.splitlines()) == 1
    unknown = run_backfills("report", cwd=tmp_path, BACKFILLS_DESTINATION="oracle")
    assert unknown.returncode == 64 and "oracle" in unknown.stderr


def test_the_destination_comes_from_the_config_file(tmp_path: Path) -> None:
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "config.toml").write_text('[backfills]\ndestination = "postgres"\n')
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from pipelines.engines import configured_engine; print(configured_engine())",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert done.stdout.strip() == "postgres", done.stderr


@pytest.mark.timeout(900)  # generous: a loaded machine makes every run slower, never wrong
@pytest.mark.slow
def test_killed_runs_on_postgres_leave_it_equal_to_an_uninterrupted_duckdb_twin(
    on_postgres: str, tmp_path: Path
) -> None:
    """The chaos test on PostgreSQL (tests/test_chaos.py), each way of killing once: at a random
    moment (SIGKILL, SIGTERM), in the middle of a load, and a load committed but not recorded
    (settled through `ctid`); the database must then equal a DuckDB twin that got the same
    answers without interruption."""
    rng = random.Random(20261130)
    pg_db, twin = tmp_path / "data" / "pg", tmp_path / "twin" / "b.duckdb"
    target = Warehouse("postgres", pg_db, postgres_credentials())
    env = {**cli_env(on_postgres), **ENV}
    with seeded_simulator() as sim:
        args = ["ingest", "--base-url", sim.base_url, "--db", str(pg_db)]
        args += [a for team in TEAMS for a in ("--team-id", str(team))]

        def clean_run() -> None:
            result = run_backfills(*args, cwd=tmp_path, **env)
            assert result.returncode == 0, result.stderr

        def polls() -> int:
            with target.connect() as con:
                return con.rows("select count(*) from supermetrics.polls")[0][0]

        started = time.monotonic()
        clean_run()
        run_seconds = time.monotonic() - started  # only to spread the random kill moments over a run
        ingest(twin, team_ids=list(TEAMS), base_url=sim.base_url, build_models=False, destination="duckdb")
        killed = dict.fromkeys(MODES, 0)
        for step in range(len(MODES)):  # once each: the DuckDB chaos test does each twice
            sim.clock.advance(300)
            before, mode = polls(), MODES[step % len(MODES)]
            if mode == "committed_not_recorded":
                clean_run()
                put_last_load_back(pg_db, forget_in_database=True, target=target)
                killed[mode] += 1
            else:
                working = target.working_dir()
                killed[mode] += kill_a_run(
                    mode, args, tmp_path, backfills_env(**env), working, run_seconds, rng
                )
            clean_run()
            kept = polls() - before  # a run stores both teams' polls in one package, or nothing
            assert kept in (2, 4), kept
            for _ in range(kept // 2):  # one uninterrupted run per run the PostgreSQL database kept
                ingest(
                    twin,
                    team_ids=list(TEAMS),
                    base_url=sim.base_url,
                    build_models=False,
                    destination="duckdb",
                )
    rebuild_models(twin, destination="duckdb")
    assert killed["committed_not_recorded"] == 1

    with duckdb.connect(str(twin), read_only=True) as duck, psycopg2.connect(on_postgres) as pg:
        marts = analytics_tables(duck, "?")
        raw = [*RAW_TABLES, CHILD_TABLE]
        cursor = pg.cursor()
        for table in raw:
            key = "_dlt_id"
            cursor.execute(f"select count(*) - count(distinct {key}) from supermetrics.{table}")
            assert cursor.fetchone()[0] == 0, f"{table} holds a row twice"
        assert tables(pg, DATASET_NAME, raw, "%s") == tables(duck, DATASET_NAME, raw, "?")
        assert tables(pg, "analytics", marts, "%s") == tables(duck, "analytics", marts, "?")


def test_watch_polls_postgres_until_stopped(on_postgres: str, tmp_path: Path) -> None:
    with seeded_simulator() as sim:
        process = subprocess.Popen(
            [BACKFILLS, "watch", "--every", "1s", "--team-id", "101", "--base-url", sim.base_url],
            cwd=tmp_path,
            env=backfills_env(**cli_env(on_postgres)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        watch = Watch(process)
        watch.read_until("team 101: poll 1,")
        watch.read_until(f"database postgresql://{urlsplit(on_postgres).username}@")
        _, stderr = watch.stop(signal.SIGTERM)
    assert process.returncode == 0, stderr
    with psycopg2.connect(on_postgres) as pg:
        cursor = pg.cursor()
        cursor.execute("select count(*) from analytics.polls")
        assert cursor.fetchone()[0] >= 1


def test_a_loader_role_without_privileges_fails_in_one_line(
    on_postgres: str,
    postgres_database: Database,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A role that may connect but not create schemas: exit 74, the server's reason in one line."""
    with psycopg2.connect(postgres_database.admin) as admin:
        admin.autocommit = True
        admin.cursor().execute("create role bare_loader login password 'bare-pw'")
        database = on_postgres.rsplit("/", 1)[1]
        admin.cursor().execute(f"revoke create on database {database} from public")
    port = on_postgres.rsplit(":", 1)[1].split("/")[0]
    url = f"postgresql://bare_loader:bare-pw@127.0.0.1:{port}/{database}"
    try:
        with seeded_simulator() as sim:
            done = run_backfills(
                "ingest", "--team-id", "101", "--base-url", sim.base_url, cwd=tmp_path, **cli_env(url)
            )
    finally:
        with psycopg2.connect(postgres_database.admin) as admin:
            admin.autocommit = True
            admin.cursor().execute("drop owned by bare_loader; drop role bare_loader")
    assert done.returncode == 74, done.stderr
    assert "PostgreSQL at postgresql://bare_loader@127.0.0.1:" in done.stderr
    assert "permission denied" in done.stderr and len(done.stderr.splitlines()) == 1
    assert "bare-pw" not in done.stderr + done.stdout


def test_alerts_from_postgres_arrive_once(
    on_postgres: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The outbox on PostgreSQL: filled in the build's transaction, delivered once per event."""
    with Receiver() as receiver, seeded_simulator() as sim:
        monkeypatch.setenv("ALERTS__WEBHOOK_URL", f"{receiver.url}/hook")
        monkeypatch.setenv("ALERTS__EVENTS", '["failed", "completed", "cancelled"]')
        monkeypatch.setenv("ALERTS__RETRY_AFTER_SECONDS", "0")
        for _ in range(6):
            ingest(
                tmp_path / "data" / "pg", team_ids=list(TEAMS), base_url=sim.base_url, destination="postgres"
            )
            sim.clock.advance(600)
    keys = [r.headers["Idempotency-Key"] for r in receiver.accepted("/hook")]
    with psycopg2.connect(on_postgres) as pg:
        cursor = pg.cursor()
        cursor.execute("select state, count(*) from alerts.outbox group by state order by state")
        states = dict(cursor.fetchall())
        cursor.execute("select event_id from alerts.outbox where state = 'delivered' order by event_id")
        delivered = [e for (e,) in cursor.fetchall()]
    assert keys and sorted(keys) == delivered  # each delivered event arrived once
    assert states.get("suppressed", 0) > 0  # what was true when alerting started is not sent
    assert "pending" not in states


def test_the_readme_roles_load_and_the_bi_role_reads_analytics_and_nothing_else(
    on_postgres: str,
    postgres_database: Database,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The loader, with exactly the documented privileges (no CREATE on the database), loads, builds
    and records alerts run after run; the BI role reads every analytics table, and nothing in
    the raw, staging or alerts schemas."""
    with Receiver() as receiver, seeded_simulator() as sim:
        monkeypatch.setenv("ALERTS__WEBHOOK_URL", f"{receiver.url}/hook")
        for _ in range(2):
            ingest(
                tmp_path / "data" / "pg", team_ids=list(TEAMS), base_url=sim.base_url, destination="postgres"
            )
            sim.clock.advance(600)
    with psycopg2.connect(on_postgres) as loader:
        marts = analytics_tables(loader, "%s")
        cursor = loader.cursor()
        cursor.execute(
            "select table_schema || '.' || table_name from information_schema.tables "
            "where table_schema in ('supermetrics', 'staging', 'alerts') order by 1"
        )
        elsewhere = [relation for (relation,) in cursor.fetchall()]
    assert len(marts) > 10 and "alerts.outbox" in elsewhere and "supermetrics.polls" in elsewhere
    bi = psycopg2.connect(postgres_database.bi)
    bi.autocommit = True  # (a `with` block would open a transaction, which the first refusal ends)
    try:
        cursor = bi.cursor()
        for table in [*marts, "model_builds"]:
            cursor.execute(f"select count(*) from analytics.{table}")
        refused = []
        for relation in elsewhere:
            try:
                cursor.execute(f"select count(*) from {relation}")
            except psycopg2.errors.InsufficientPrivilege:
                refused.append(relation)
    finally:
        bi.close()
    assert refused == elsewhere

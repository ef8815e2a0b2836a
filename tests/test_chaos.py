"""The chaos test: `backfills ingest` killed at any moment never loses a row or doubles one.

A seeded busy simulator (two teams, failures, retries, cancels) is polled step after step. In each
step a victim run is stopped (SIGKILL at a random moment, SIGKILL while a load job file sits in
dlt's `started_jobs/`, SIGTERM or SIGINT at a random moment of its whole length, or the exact state
of a run killed after its inserts committed and before dlt recorded them), then a clean run
follows, as cron would start it. A run stopped by SIGTERM or SIGINT exits 143 or 130 in one line,
records no failed build, and `backfills check` does not turn CRITICAL because of it.
A twin database gets the same answers from uninterrupted runs: one per poll the chaos database
kept. At the end both hold the same raw history and the same analytics tables, no table holds a
row twice, and every data test passes. The chaos database's models were built incrementally run
after run, killed builds included, the twin's in one full build: their equal analytics tables
also prove that incremental builds equal a full refresh. Alerting is on in the chaos database (a
receiver on 127.0.0.1): every event of its analytics.alert_events is in the outbox exactly once,
and every event sent reached the receiver.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
from cli_process import BACKFILLS, backfills_env, ingest_args, run_backfills
from conftest import START, TEAM
from receiver import Receiver
from support import put_last_load_back
from test_publish import published_tables

from pipelines.ingest import ingest, rebuild_models, working_dir
from pipelines.simulator import Simulator, Workload

OTHER = 424242
STEPS = 10  # two of each mode: under a minute on two idle cores
MODES = ("sigkill", "sigkill_in_load", "sigterm", "sigint", "committed_not_recorded")
SIGNALS = {"sigkill": signal.SIGKILL, "sigterm": signal.SIGTERM, "sigint": signal.SIGINT}
ENV = {"SOURCES__SUPERMETRICS__MAX_ATTEMPTS": "2", "SOURCES__SUPERMETRICS__BACKOFF_FACTOR": "0"}
# Columns that differ between two databases given the same answers: dlt's ids, this machine's
# clock and latency, and the per-request headers.
VOLATILE = {
    "_dlt_id",
    "_dlt_load_id",
    "_dlt_parent_id",
    "received_at",
    "duration_ms",
    "request_id",
    "rate_limit_remaining",
    "last_received_at",
    "last_ok_received_at",
}
# A run must end once stopped (or on its own); one still there after this long is stuck, and the
# test shows where rather than waiting for pytest's timeout.
STOPPED_RUN_ENDS = 240
RAW_SKIP = {"_settled_loads"}  # bookkeeping: which loads were settled when
ANALYTICS_SKIP = {"model_builds"}  # one row per build: the chaos database builds more often


def started_jobs(working: Path) -> list[Path]:
    return list((working / "supermetrics_backfills" / "load" / "normalized").glob("*/started_jobs/*"))


def kill_while_loading(victim: subprocess.Popen, working: Path) -> bool:
    """SIGKILL the victim as soon as a load job file is in dlt's working folder's `started_jobs/`;
    False if it ended first."""
    while victim.poll() is None:
        if started_jobs(working):
            victim.send_signal(signal.SIGKILL)
            return True
        time.sleep(0.0005)  # watching the folder: the job file is the event
    return False


def kill_a_run(
    mode: str,
    args: list[str],
    cwd: Path,
    env: dict[str, str],
    working: Path,
    latest: float,
    rng: random.Random,
) -> bool:
    """Start `backfills ARGS` and stop it the way `mode` says (not committed_not_recorded): a
    signal at a random moment up to `latest` seconds, or SIGKILL as soon as a load job starts in
    dlt's `working` folder. Returns whether it was stopped (False: it ended first). A run stopped
    by SIGTERM or SIGINT must say so in one line, with 143 or 130."""
    victim = subprocess.Popen(  # PYTHONFAULTHANDLER: SIGABRT prints every thread's stack
        [BACKFILLS, *args],
        cwd=cwd,
        env={**env, "PYTHONFAULTHANDLER": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    killed = False
    if mode == "sigkill_in_load":
        killed = kill_while_loading(victim, working)
    else:
        try:  # a random moment: there is nothing to observe
            victim.wait(timeout=rng.uniform(0.1, 1.0) * latest)
        except subprocess.TimeoutExpired:
            victim.send_signal(SIGNALS[mode])
            killed = True
    try:
        _, stderr = victim.communicate(timeout=STOPPED_RUN_ENDS)
    except subprocess.TimeoutExpired:
        victim.send_signal(signal.SIGABRT)
        _, stderr = victim.communicate()
        pytest.fail(f"a {mode} run did not end within {STOPPED_RUN_ENDS} s; its threads:\n{stderr}")
    if killed and mode in ("sigterm", "sigint") and victim.returncode != 0:  # 0: it had just ended
        assert victim.returncode == 128 + SIGNALS[mode], stderr
        assert stderr.count("\n") == 1 and "backfills: interrupted: stopped by" in stderr, stderr
    return killed


def tables(db: Path) -> dict[str, list[tuple]]:
    """Every raw and analytics table's rows without the volatile columns, sorted; child rows carry
    their parent's poll and backfill instead of dlt's ids."""
    out = {}
    with duckdb.connect(str(db), read_only=True) as con:
        listing = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema in ('supermetrics', 'analytics') and table_type = 'BASE TABLE'"
        ).fetchall()
        for schema, table in sorted(listing, reverse=True):  # raw tables first
            if table in RAW_SKIP | ANALYTICS_SKIP or table.startswith("_dlt"):
                continue
            columns = [
                c
                for (c,) in con.execute(
                    "select column_name from information_schema.columns where table_schema = ? "
                    "and table_name = ? order by ordinal_position",
                    [schema, table],
                ).fetchall()
                if c not in VOLATILE
            ]
            select = ", ".join(f't."{c}"' for c in columns)
            source = f"{schema}.{table} as t"
            if table.endswith("__error_report"):
                select += ", p.poll_id, p.transfer_backfill_id"
                source += f" join {schema}.{table.split('__')[0]} as p on p._dlt_id = t._dlt_parent_id"
            out[f"{schema}.{table}"] = con.execute(f"select {select} from {source} order by all").fetchall()
    return out


def duplicated_rows(db: Path) -> dict[str, int]:
    with duckdb.connect(str(db), read_only=True) as con:
        found = {}
        for (table,) in con.execute(
            "select table_name from information_schema.columns "
            "where table_schema = 'supermetrics' and column_name = '_dlt_id'"
        ).fetchall():
            found[table] = con.execute(
                f"select count(*) - count(distinct _dlt_id) from supermetrics.{table}"
            ).fetchone()[0]
        found["_dlt_loads"] = con.execute(
            "select count(*) - count(distinct load_id) from supermetrics._dlt_loads"
        ).fetchone()[0]
    return found


def build_modes(db: Path) -> set[str]:
    with duckdb.connect(str(db), read_only=True) as con:
        modes = con.execute("select distinct mode from analytics.model_builds where outcome = 'ok'")
        return {m for (m,) in modes.fetchall()}


def poll_count(db: Path) -> int:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("select count(*) from supermetrics.polls").fetchone()[0]


@pytest.fixture
def busy_sim() -> Simulator:
    workload = Workload(transfers_per_team=4, backfills_per_day=96)
    with Simulator(
        seed=11, speed=0, start=START, teams=(TEAM, OTHER), workload=workload, warmup=timedelta(hours=2)
    ) as simulator:
        yield simulator


@pytest.fixture
def receiver() -> Receiver:
    with Receiver() as running:
        yield running


def alerts_env(receiver: Receiver) -> dict[str, str]:
    kinds = '["failed", "completed", "cancelled", "stalled", "running_long"]'
    return {
        "ALERTS__WEBHOOK_URL": f"{receiver.url}/hook",
        "ALERTS__EVENTS": kinds,
        "ALERTS__RETRY_AFTER_SECONDS": "0",
    }


@pytest.mark.timeout(900)  # generous: a loaded machine makes every run slower, never wrong
@pytest.mark.slow
def test_killed_runs_leave_the_database_equal_to_an_uninterrupted_twin(
    busy_sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: Receiver
) -> None:
    sim, rng = busy_sim, random.Random(20261129)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOURCES__SUPERMETRICS__API_KEY", sim.api_key)
    chaos, twin = tmp_path / "chaos" / "b.duckdb", tmp_path / "twin" / "b.duckdb"
    args = [*ingest_args(sim.base_url, chaos), "--team-id", str(OTHER)]
    chaos_env = {**ENV, **alerts_env(receiver), "SOURCES__SUPERMETRICS__API_KEY": sim.api_key}
    env = backfills_env(**chaos_env)

    def clean_run() -> None:
        result = run_backfills(*args, cwd=tmp_path, **chaos_env)
        assert result.returncode == 0, result.stderr

    def twin_runs(count: int) -> None:  # the models are built once at the end: same result, less time
        for _ in range(count):
            ingest(twin, team_ids=[TEAM, OTHER], base_url=sim.base_url, build_models=False)

    started = time.monotonic()
    clean_run()
    run_seconds = time.monotonic() - started  # only to spread the random kill moments over a run
    twin_runs(1)
    killed = dict.fromkeys(MODES, 0)
    for step in range(STEPS):
        sim.clock.advance(300)
        before, mode = poll_count(chaos), MODES[step % len(MODES)]
        if mode == "committed_not_recorded":
            clean_run()
            put_last_load_back(chaos, forget_in_database=True)
            killed[mode] += 1
        else:
            killed[mode] += kill_a_run(mode, args, tmp_path, env, working_dir(chaos), run_seconds, rng)
        if mode in ("sigterm", "sigint") and poll_count(chaos):  # a stop is not a failure
            check = run_backfills("check", "--db", str(chaos), cwd=tmp_path, **chaos_env)
            assert check.returncode in (0, 1), check.stdout
        clean_run()
        kept = poll_count(chaos) - before  # a run stores both teams' polls in one package, or nothing
        assert kept in (2, 4), kept
        twin_runs(kept // 2)  # one uninterrupted run per run the chaos database kept
    rebuild_models(twin)
    print(f"killed per mode: {killed}")
    assert killed["committed_not_recorded"] == STEPS // len(MODES)
    assert killed["sigkill"] + killed["sigkill_in_load"] > 0 and killed["sigterm"] + killed["sigint"] > 0

    assert duplicated_rows(chaos) == dict.fromkeys(duplicated_rows(chaos), 0)
    chaos_tables, twin_tables = tables(chaos), tables(twin)
    assert set(chaos_tables) == set(twin_tables)
    differing = [name for name in twin_tables if chaos_tables[name] != twin_tables[name]]
    assert differing == []
    assert build_modes(chaos) == {"full", "incremental"} and build_modes(twin) == {"full"}
    with duckdb.connect(str(chaos), read_only=True) as con:  # stopped builds are not failed builds
        assert (
            con.execute("select count(*) from analytics.model_builds where outcome <> 'ok'").fetchone()[0]
            == 0
        )
    # publishes were killed too: what BI tools read (the copy, and the Parquet files through the
    # views) equals the tables
    published = published_tables(chaos)
    for key, rows in published.items():
        if key.startswith("source:"):
            table = key.split(":")[1]
            assert published[f"copy:{table}"] == rows and published[f"parquet:{table}"] == rows, table
    assert len(chaos_tables["supermetrics.backfill_versions"]) > 30  # the scenario is busy

    # the outbox: each event once, recorded by a build that committed; each one sent arrived
    with duckdb.connect(str(chaos), read_only=True) as con:
        recorded = con.execute("select event_id, state from alerts.outbox order by event_id").fetchall()
        true_now = {e for (e,) in con.execute("select event_id from analytics.alert_events").fetchall()}
    ids = {e for e, _ in recorded}
    assert len(recorded) == len(ids) and true_now <= ids  # a stall that ended stays recorded: <=
    received = {r.headers["Idempotency-Key"] for r in receiver.accepted("/hook")}
    delivered = {e for e, state in recorded if state == "delivered"}
    assert delivered and delivered <= received <= {e for e, _ in recorded}
    assert {state for _, state in recorded} <= {"delivered", "suppressed"}  # the clean runs sent the rest

"""Healing and staleness through the real CLI: doubled rows are repaired by the next run, a failed
model build is said plainly (report, check) until a run builds again."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import duckdb
import pytest
from cli_process import ingest_args, run_backfills
from conftest import RAW_TABLES, ROOT, TEAM, Api, add_transfer, days_ago
from support import put_last_load_back

from pipelines.simulator import Simulator

ENV = {"SOURCES__SUPERMETRICS__MAX_ATTEMPTS": "2", "SOURCES__SUPERMETRICS__BACKOFF_FACTOR": "0"}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "b.duckdb"


def cli(sim: Simulator, tmp_path: Path, *args: str, **env: str):
    return run_backfills(*args, cwd=tmp_path, **ENV, SOURCES__SUPERMETRICS__API_KEY=sim.api_key, **env)


def ingest(sim: Simulator, db: Path, **env: str):
    return cli(sim, db.parent.parent, *ingest_args(sim.base_url, db), **env)


def raw_rows(db: Path) -> dict[str, list[tuple]]:
    with duckdb.connect(str(db), read_only=True) as con:
        rows = {t: con.execute(f"select * from supermetrics.{t} order by all").fetchall() for t in RAW_TABLES}
        rows["error_report"] = con.execute(
            "select * from supermetrics.backfill_versions__error_report order by all"
        ).fetchall()
    return rows


def double_a_load_as_the_old_release_did(db: Path, poll_id: int) -> dict[str, int]:
    """What a run killed after its inserts committed left behind before settling existed: every
    row of one load twice (same `_dlt_id`), its `_dlt_loads` row twice, nothing settled."""
    doubled = {}
    with duckdb.connect(str(db)) as con:
        (load_id,) = con.execute(
            "select _dlt_load_id from supermetrics.polls where poll_id = ?", [poll_id]
        ).fetchone()
        doubled["backfill_versions__error_report"] = con.execute(
            "insert into supermetrics.backfill_versions__error_report select * from "
            "supermetrics.backfill_versions__error_report where _dlt_parent_id in "
            "(select _dlt_id from supermetrics.backfill_versions where _dlt_load_id = ?)",
            [load_id],
        ).fetchone()[0]
        for table in RAW_TABLES:
            con.execute(
                f"insert into supermetrics.{table} select * from supermetrics.{table} where _dlt_load_id = ?",
                [load_id],
            )
        con.execute(
            "insert into supermetrics._dlt_loads select * from supermetrics._dlt_loads where load_id = ?",
            [load_id],
        )
        con.execute("drop table supermetrics._settled_loads")
        for table in RAW_TABLES:
            doubled[table] = (
                con.execute(
                    f"select count(*) from supermetrics.{table} where _dlt_load_id = ?", [load_id]
                ).fetchone()[0]
                // 2
            )
    return doubled


@pytest.mark.parametrize("reports_stamped", [True, False], ids=["reports-with-load-id", "reports-without"])
def test_the_next_run_repairs_rows_a_killed_run_doubled(
    sim: Simulator, api: Api, db: Path, reports_stamped: bool
) -> None:
    # a backfill of 3 days that always fails: poll 2 stores its FAILED version with 3 errors
    api.create(add_transfer(sim, failure_rate=1.0), days_ago(3), days_ago(1))
    assert ingest(sim, db).returncode == 0
    sim.clock.advance(600)
    assert ingest(sim, db).returncode == 0
    before = raw_rows(db)
    doubled = double_a_load_as_the_old_release_did(db, poll_id=2)
    if not reports_stamped:  # error report rows as releases before stored them: no load id of their own
        with duckdb.connect(str(db)) as con:
            con.execute("update supermetrics.backfill_versions__error_report set _dlt_load_id = null")
    # poll 2 (T+600, all 3 runs failed at T+460): its poll row, the FAILED version, 3 error rows;
    # the sweep's 3 runs (created T+130, T+240, T+350) and its log of 2 requests (latest, runs)
    assert doubled == {
        "polls": 1,
        "backfill_versions": 1,
        "backfill_versions__error_report": 3,
        "listing_events": 0,
        "backfill_lookups": 0,
        "transfers": 0,
        "transfer_runs": 3,
        "api_sweeps": 2,
    }

    healed = ingest(sim, db)  # nothing changed in the API: the run adds its poll and sweep log rows
    assert healed.returncode == 0, healed.stderr
    warnings = [line for line in healed.stderr.splitlines() if "duplicated" in line]
    assert warnings == [
        "WARNING: removed 10 duplicated row(s) (api_sweeps 2, backfill_versions 1, "
        "backfill_versions__error_report 3, polls 1, transfer_runs 3) that a run killed during its load "
        "had stored twice"
    ]
    after = raw_rows(db)
    assert after["polls"][:-1] == before["polls"] and len(after["polls"]) == len(before["polls"]) + 1
    assert after["api_sweeps"][: len(before["api_sweeps"])] == before["api_sweeps"]
    for table in ("backfill_versions", "listing_events", "backfill_lookups", "error_report", "transfer_runs"):
        assert after[table] == before[table], table
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute(
            "select count(*) - count(distinct load_id) from supermetrics._dlt_loads"
        ).fetchone() == (0,)

    again = ingest(sim, db)
    assert again.returncode == 0 and "duplicated" not in again.stderr  # said once, not every run


def test_a_load_dlt_repeats_after_it_was_settled_is_settled_again(sim: Simulator, api: Api, db: Path) -> None:
    """A power cut can undo dlt's file moves but not DuckDB's committed transactions: dlt then loads
    a package again whose load was already settled."""
    api.create(add_transfer(sim, failure_rate=1.0), days_ago(3), days_ago(1))
    assert ingest(sim, db).returncode == 0
    sim.clock.advance(600)
    assert ingest(sim, db).returncode == 0
    before = raw_rows(db)
    put_last_load_back(db, forget_in_database=False)
    again = ingest(sim, db)
    assert again.returncode == 0, again.stderr
    # the last load, poll 2 at T+600: its poll row, the FAILED version and its 3 errors, and the
    # sweep's rows: the 3 runs (created at T+130, T+240, T+350, all failed by T+460) and the log
    # of its 2 requests (latest, runs; the transfer list read at poll 1 is not due for 24 hours)
    doubled = "api_sweeps 2, backfill_versions 1, backfill_versions__error_report 3, polls 1, transfer_runs 3"
    assert again.stderr.splitlines() == [  # one line: what the run found, and what it did
        f"WARNING: loaded data a previous run left pending; removed 10 duplicated row(s) ({doubled}) "
        "that a run killed during its load had stored twice"
    ]
    after = raw_rows(db)
    growing = ("polls", "api_sweeps")  # every run adds its poll and its sweep's log
    assert all(after[t][: len(before[t])] == before[t] for t in growing)
    assert {t: after[t] == before[t] for t in after if t not in growing} == dict.fromkeys(
        set(after) - set(growing), True
    )


def broken_models(tmp_path: Path) -> Path:
    """A copy of the SQL models with one data test that every poll breaks."""
    sql = tmp_path / "broken-sql"
    shutil.copytree(ROOT / "sql", sql)
    polls = sql / "marts" / "polls.yml"
    polls.write_text(
        polls.read_text().replace("  expressions:\n", '  expressions:\n    - "poll_id < 0"\n', 1)
    )
    return sql


def first_line(result) -> str:
    return result.stdout.splitlines()[0]


def without_ages(line: str) -> str:
    return re.sub(r"\d+[mhd] \d+[smh]", "<age>", line)


def test_a_failed_build_is_said_plainly_until_a_run_builds_again(
    sim: Simulator, api: Api, db: Path, tmp_path: Path
) -> None:
    api.create(add_transfer(sim), days_ago(2), days_ago(1))
    assert ingest(sim, db).returncode == 0
    good = cli(sim, tmp_path, "check", "--db", str(db))
    assert good.returncode == 0 and first_line(good).startswith(f"OK: newest successful poll of team {TEAM} ")

    sim.clock.advance(300)
    broken = ingest(sim, db, BACKFILLS_SQL_DIR=str(broken_models(tmp_path)))
    assert broken.returncode == 70
    assert "data tests failed: analytics.polls: poll_id < 0 (2 rows)" in broken.stderr

    report = cli(sim, tmp_path, "report", "--db", str(db))
    assert report.returncode == 0
    assert first_line(report).startswith("CRITICAL: models stale: the last model build failed ")
    assert "analytics.polls: poll_id < 0" in first_line(report)
    assert "the tables are those of the build " in first_line(report)
    with duckdb.connect(str(db.parent / "published" / db.name), read_only=True) as con:
        # the published tables are the last good build's (one poll), with the failure recorded
        assert con.execute("select count(*) from analytics.polls").fetchone() == (1,)
        assert con.execute("select outcome from analytics.model_builds order by finished_at").fetchall() == [
            ("ok",),
            ("failed",),
        ]
    check = cli(sim, tmp_path, "check", "--db", str(db))
    assert check.returncode == 2 and without_ages(first_line(check)) == without_ages(first_line(report))

    sim.clock.advance(300)
    assert ingest(sim, db).returncode == 0  # the cause is gone: builds normally
    recovered = cli(sim, tmp_path, "check", "--db", str(db))
    assert recovered.returncode == 0 and first_line(recovered).startswith("OK: ")
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("select count(*) from analytics.polls").fetchone() == (3,)


def test_check_warns_on_a_failed_poll_and_is_critical_when_too_old(
    sim: Simulator, api: Api, db: Path, tmp_path: Path
) -> None:
    api.create(add_transfer(sim), days_ago(2), days_ago(1))
    assert ingest(sim, db).returncode == 0
    sim.faults.add(kind="503", endpoint="list", times=2)  # both attempts of the next poll
    assert ingest(sim, db).returncode == 69
    warning = cli(sim, tmp_path, "check", "--db", str(db))
    assert warning.returncode == 1
    assert first_line(warning).startswith(
        f"WARNING: the last 1 poll(s) of team {TEAM} failed (API unavailable: "
    )

    # the newest successful poll arrived an hour ago (by this machine's clock); the history is
    # edited in place, which only a full refresh reads again (builds read what was stored since)
    with duckdb.connect(str(db)) as con:
        con.execute("update supermetrics.polls set received_at = received_at - interval 1 hour")
    assert cli(sim, tmp_path, "models", "--full-refresh", "--db", str(db)).returncode == 0
    stale = cli(sim, tmp_path, "check", "--db", str(db), "--max-age", "20m")
    assert stale.returncode == 2
    assert re.match(  # an hour and the seconds the test took since
        rf"CRITICAL: team {TEAM}'s newest successful poll is 1h 0\dm old \(limit 20m 00s\), "
        r"its last 1 poll\(s\) failed \(API unavailable: ",
        first_line(stale),
    )
    assert cli(sim, tmp_path, "check", "--db", str(db), "--max-age", "2h").returncode == 1


def test_check_without_a_database_is_unknown(tmp_path: Path) -> None:
    result = run_backfills("check", "--db", str(tmp_path / "none.duckdb"), cwd=tmp_path)
    assert result.returncode == 3 and result.stdout.startswith("UNKNOWN: there is no database at ")
    bad = run_backfills("check", "--db", str(tmp_path / "none.duckdb"), "--max-age", "soon", cwd=tmp_path)
    assert bad.returncode == 64 and "'soon' is not a duration with its unit" in bad.stderr  # a usage error

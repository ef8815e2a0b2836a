"""`backfills demo` end to end, as `make demo` runs it."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from cli_process import run_backfills

from pipelines.demo import EXAMPLE_QUERIES


@pytest.mark.slow
def test_demo_runs_the_whole_pipeline(tmp_path: Path) -> None:
    result = run_backfills(
        "demo", "--db", str(tmp_path / "data" / "demo.duckdb"), "--days", "1", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # the injected outage is in the summary, not a warning per retry
    out = result.stdout
    # a day of 5-minute polls = 288; the demo injects one outage: one poll fails
    assert out.startswith("288 polls over 1 simulated day, 1 failed")
    for expected in (
        "Needs a person",
        "In progress",
        "Finished in the last 24 hours",
        "Top error patterns",
        f"The database: {tmp_path / 'data' / 'demo.duckdb'}",
        "For BI tools:",
        "Queries to try",
    ):
        assert expected in out
    with duckdb.connect(str(tmp_path / "data" / "demo.duckdb"), read_only=True) as con:
        assert con.execute(
            "select outcome, count(*) from analytics.polls group by 1 order by 1"
        ).fetchall() == [("failed", 1), ("ok", 287)]
        statuses = {
            s
            for (s,) in con.execute(
                "select distinct status from analytics.backfill_status_history"
            ).fetchall()
        }
        assert {"SCHEDULED", "RUNNING", "COMPLETED"} <= statuses
        for query in EXAMPLE_QUERIES:
            assert query in out
            assert con.execute(query).fetchall()

    again = run_backfills(
        "demo", "--db", str(tmp_path / "data" / "demo.duckdb"), "--days", "0.1", cwd=tmp_path
    )
    assert again.returncode == 0, again.stderr  # its own database: remade from nothing
    assert again.stdout.startswith("29 polls")  # 0.1 x 288 polls a day, rounded


def test_demo_never_overwrites_a_database_it_did_not_make(tmp_path: Path) -> None:
    precious = tmp_path / "backfills.duckdb"
    precious.write_bytes(b"precious")
    result = run_backfills("demo", "--db", str(precious), cwd=tmp_path)
    assert result.returncode == 78 and "was not made by backfills demo" in result.stderr
    assert precious.read_bytes() == b"precious"


def test_query_command(tmp_path: Path) -> None:
    run_backfills("demo", "--db", str(tmp_path / "demo.duckdb"), "--days", "0.1", cwd=tmp_path)
    result = run_backfills(
        "query",
        "--db",
        str(tmp_path / "demo.duckdb"),
        "select count(*) as polls from analytics.polls",
        cwd=tmp_path,
    )
    assert result.returncode == 0 and result.stdout.split() == ["polls", "29", "1", "row"]
    bad = run_backfills("query", "--db", str(tmp_path / "demo.duckdb"), "select nope", cwd=tmp_path)
    assert bad.returncode == 64 and bad.stderr.startswith("backfills: usage error: the query failed")


def test_demo_keeps_a_demo_database_that_ingest_wrote_to(tmp_path: Path) -> None:
    """Made by the demo, then used for real: the demo must not delete that history."""
    from cli_process import ingest_args, start_simulator

    db = tmp_path / "data" / "demo.duckdb"
    assert run_backfills("demo", "--db", str(db), "--days", "0.1", cwd=tmp_path).returncode == 0
    # another simulated world, later than the demo's days: a real ingest's history goes on from there
    simulator, base_url = start_simulator("--speed", "0", "--no-workload", "--start", "2026-02-01T00:00:00Z")
    try:
        ingested = run_backfills(
            *ingest_args(base_url, db), cwd=tmp_path, SOURCES__SUPERMETRICS__API_KEY="sim-key"
        )
    finally:
        simulator.terminate()
        simulator.wait()
    assert ingested.returncode == 0, ingested.stderr
    before = db.read_bytes()
    again = run_backfills("demo", "--db", str(db), "--days", "0.1", cwd=tmp_path)
    assert again.returncode == 78, again.stderr
    assert "holds polls that backfills demo did not make" in again.stderr
    assert db.read_bytes() == before
    with duckdb.connect(str(db), read_only=True) as con:  # the demo's 29 polls and the real one
        assert con.execute("select count(*) from supermetrics.polls").fetchone()[0] == 30


def test_demo_refuses_a_length_that_is_no_length(tmp_path: Path) -> None:
    for days in ("0", "-1"):
        result = run_backfills("demo", "--db", str(tmp_path / "demo.duckdb"), "--days", days, cwd=tmp_path)
        assert result.returncode == 64 and "Invalid value for '--days'" in result.stderr
    assert not (tmp_path / "demo.duckdb").exists()

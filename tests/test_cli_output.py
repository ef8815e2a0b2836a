"""Output scripts can use: `query --format`, several statements, a closed pipe, durations with
units, `alerts --dry-run` before any channel, and `--help` that says what a command does."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from pathlib import Path

import pytest
from cli_process import BACKFILLS, backfills_env, ingest_args, run_backfills
from conftest import Api, add_transfer, days_ago

from pipelines.simulator import Simulator


@pytest.fixture
def db(sim: Simulator, api: Api, tmp_path: Path) -> Path:
    """One FAILED backfill (two runs, both failed), ingested by the real CLI."""
    api.create(add_transfer(sim, failure_rate=1.0), days_ago(2), days_ago(1))
    sim.clock.advance(400)
    path = tmp_path / "b.duckdb"
    done = run_backfills(
        *ingest_args(sim.base_url, path), cwd=tmp_path, SOURCES__SUPERMETRICS__API_KEY=sim.api_key
    )
    assert done.returncode == 0, done.stderr
    return path


def query(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_backfills("query", "--db", str(db), *args, cwd=db.parent)


def test_query_prints_whole_cells_null_and_each_statement(db: Path) -> None:
    long_text = "x" * 150
    shown = query(db, f"select '{long_text}' as t, null as n, 1.5 as f; select 1 as a where false")
    assert shown.returncode == 0, shown.stderr
    first, second = shown.stdout.split("\n\n")
    # text left-aligned, numbers (and a column of NULLs) right-aligned, two spaces apart
    assert first.splitlines() == ["t".ljust(150) + "     n    f", f"{long_text}  NULL  1.5", "1 row"]
    assert second.splitlines() == ["a", "0 rows"]


def test_query_formats_for_scripts(db: Path) -> None:
    sql = "select transfer_backfill_id, status, failure_rate, end_time from analytics.backfills"
    as_csv = query(db, "--format", "csv", sql)
    as_json = query(db, "--format", "json", sql)
    assert as_csv.returncode == 0 and as_json.returncode == 0, as_csv.stderr + as_json.stderr
    [row] = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert (row["status"], row["failure_rate"], row["end_time"]) == ("FAILED", "1.0", "")
    [record] = json.loads(as_json.stdout)
    assert (record["status"], record["failure_rate"], record["end_time"]) == ("FAILED", 1.0, None)
    several = query(db, "--format", "json", "select 1; select 2")
    assert several.returncode == 64 and several.stderr.count("\n") == 1
    assert "--format json prints one statement's result, and 2 were given" in several.stderr


def test_a_closed_pipe_ends_quietly_with_the_sigpipe_status(db: Path) -> None:
    reader = subprocess.Popen(
        [BACKFILLS, "query", "--db", str(db), "select * from range(300000)"],
        cwd=db.parent,
        env=backfills_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert reader.stdout.readline().strip() == "range"  # as `| head -1`: read a line, then close
    reader.stdout.close()
    assert reader.wait(timeout=60) == 141
    assert reader.stderr.read() == ""


@pytest.mark.parametrize(
    "args",
    [["check", "--max-age", "20"], ["check", "--max-age", "20x"], ["watch", "--every", "90"]],
    ids=["bare number", "unknown unit", "watch bare number"],
)
def test_durations_need_their_unit(db: Path, args: list[str]) -> None:
    refused = run_backfills(*args, "--db", str(db), cwd=db.parent)
    assert refused.returncode == 64, refused.stderr  # click's usage message, its last line the error
    assert refused.stderr.splitlines()[-1].endswith(
        "is not a duration with its unit, such as 30s, 5m, 1h or 2d"
    )


def test_alerts_dry_run_before_any_channel_shows_what_would_be_said(db: Path) -> None:
    preview = run_backfills("alerts", "--dry-run", "--db", str(db), cwd=db.parent)
    assert preview.returncode == 0, preview.stderr
    event, summary = preview.stdout.splitlines()
    assert event.startswith("Backfill 10001 of ") and event.endswith("FAILED: 2 of 2 runs failed")
    assert summary.startswith("1 event(s) true now, as alerts would say them; no channel is configured")


@pytest.mark.parametrize("command", ["report", "check", "query"])
def test_read_commands_say_that_they_create_nothing(command: str, tmp_path: Path) -> None:
    shown = run_backfills(command, "--help", cwd=tmp_path)
    assert "read only, never created" in shown.stdout and "Folders are created" not in shown.stdout

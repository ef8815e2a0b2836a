"""`backfills report` on a real database: formats, and untrusted text neutralised."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import date

import pytest
from cli_process import run_backfills
from conftest import OTHER_TEAM, TEAM, Api, Warehouse, add_transfer, days_ago
from rich.console import Console

from pipelines import report
from pipelines.simulator import Simulator
from pipelines.supermetrics.errors import MonitorError

HOSTILE = "\x1b[2J\x1b]0;pwned\x07Token expired\r\n\x1b[31mred\x1b[0m\u202edelete\x00"


@pytest.fixture
def busy(sim: Simulator, api: Api, warehouse: Warehouse) -> Warehouse:
    """Running, failed with a hostile error message, and finished backfills."""
    running = add_transfer(sim, run_seconds=100)
    failing = add_transfer(sim, failure_rate=1.0, run_seconds=100)
    sim.world.rename_transfer(TEAM, failing, "Brand\x1b[31m campaigns")  # a name is untrusted text too
    done = api.create(add_transfer(sim, run_seconds=100), days_ago(1), days_ago(1))
    api.create(running, days_ago(30), days_ago(1))
    failed = api.create(failing, days_ago(2), days_ago(1))
    warehouse.build_models = False  # the last run builds the models of all three
    warehouse.ingest()
    sim.clock.advance(1000)
    sim.world.sync()
    sim.world.get(TEAM, failed["transfer_backfill_id"]).errors[0]["error"] = HOSTILE
    warehouse.ingest()
    sim.clock.advance(600)
    warehouse.build_models = True
    warehouse.ingest()
    assert warehouse.rows(
        "select status from analytics.backfills where transfer_backfill_id = ?", done["transfer_backfill_id"]
    ) == [("COMPLETED",)]
    return warehouse


def sim_source(warehouse: Warehouse, transfer_id: int) -> str:
    return warehouse.sim.world.transfer(TEAM, transfer_id).source


def backfills_report(warehouse: Warehouse, *args: str) -> subprocess.CompletedProcess[str]:
    return run_backfills(
        "report", "--db", str(warehouse.db_path), *args, cwd=warehouse.db_path.parent, COLUMNS="100"
    )


def test_plain_text_when_not_a_terminal(busy: Warehouse) -> None:
    result = backfills_report(busy)
    assert result.returncode == 0, result.stderr
    status, headline, _, needs, failed, counts, *_ = result.stdout.splitlines()
    assert status.startswith(f"OK: newest successful poll of team {TEAM} ")  # the numbers' age first
    assert headline == "1 need a person (1 failed); 1 in progress; 1 finished in the last 24 h"
    # what needs a person first: what, since when (the first poll that saw it FAILED, T+1000,
    # to the newest, T+1600), which team, the counts and the failing days
    assert needs == "Needs a person (1)"
    assert failed == "FAILED for 10m 00s  team 936506  backfill 10003  Brand\\x1b[31m campaigns (456002)"
    assert counts == "  2 of 2 runs failed, 0 completed; failing days 2026-01-03, 2026-01-04"
    out = result.stdout
    for title in (
        "In progress (1)",
        "Finished in the last 24 hours (1)",
        "Transfers with the worst failure rates (1)",
        "Top error patterns",
        "Last poll (1)",
    ):
        assert title in out
    assert "\x1b" not in out and "\x07" not in out and "\x00" not in out and "\u202e" not in out
    assert "Token expired" in out  # the latest error, whole
    assert "██████████ 100.0%" not in out  # a FAILED backfill is no full progress bar
    # a transfer by its name (the transfer list's display_name), its id said once
    assert f"{sim_source(busy, 456001)} 456001" in out and "456001 (456001)" not in out


@pytest.mark.parametrize("width", [80, 200])
def test_the_terminal_layout_fits_80_and_200_columns(busy: Warehouse, width: int) -> None:
    result = run_backfills("report", "--db", str(busy.db_path), cwd=busy.db_path.parent, COLUMNS=str(width))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= width  # characters: a bar is one each
    header = next(line for line in lines if line.startswith("team    backfill  transfer"))
    assert "progress" in header  # the bar is kept whole, never wrapped
    if width == 200:
        assert "…" not in result.stdout  # nothing needed narrowing


def test_now_is_the_api_clock_of_the_newest_successful_poll(busy: Warehouse) -> None:
    """A failed poll carries this machine's clock (months after the simulated one): it must not
    make the finished backfills look older than a day."""
    busy.sim.faults.add(kind="cut_off", endpoint="list", times=10)
    with pytest.raises(MonitorError):
        busy.ingest()
    result = backfills_report(busy)
    assert "Finished in the last 24 hours (1)" in result.stdout


def test_rich_tables_on_a_terminal_carry_no_escapes_from_the_data(busy: Warehouse) -> None:
    sections, _ = report.gather(busy.db_path)
    buffer = io.StringIO()
    report.render_rich(sections, Console(file=buffer, force_terminal=True, width=200))
    out = buffer.getvalue()
    assert "In progress" in out and "Token expired" in out
    assert "\x1b[2J" not in out and "\x1b]0;" not in out and "\x07" not in out  # rich's own colours only


def test_json_and_csv_for_scripts(busy: Warehouse) -> None:
    data = json.loads(backfills_report(busy, "--format", "json").stdout)
    assert list(data)[0] == "status" and data["status"]["level"] == "OK"
    assert set(data) == {"status", "last_build", *report.SECTIONS}
    assert [(t["team_id"], t["last_poll_id"], t["last_outcome"]) for t in data["freshness"]] == [
        (TEAM, 3, "ok")
    ]
    assert data["last_build"][0]["outcome"] == "ok"
    assert {b["status"] for b in data["incomplete"]} == {"RUNNING", "FAILED"}
    assert [(a["reason"], a["failing_days"]) for a in data["attention"]] == [
        ("failed", ["2026-01-03", "2026-01-04"])
    ]
    for name in ("attention", "incomplete", "finished", "transfers", "errors", "polls"):
        assert data[name] and all(row["team_id"] == TEAM for row in data[name]), name  # never ambiguous
    assert all("\x1b" not in json.dumps(row, ensure_ascii=False) for row in data["transfers"])
    finished = backfills_report(busy, "--format", "csv", "--section", "finished")
    assert finished.stderr.startswith("OK: ")  # the status goes beside the CSV, not into it
    rows = list(csv.DictReader(io.StringIO(finished.stdout)))
    assert [r["status"] for r in rows] == ["COMPLETED"]
    assert date.fromisoformat(rows[0]["finished_at"][:10]) == date(2026, 1, 5)


def test_report_reads_the_published_copy_so_a_busy_database_is_no_matter(busy: Warehouse) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
            "print('open', flush=True); sys.stdin.read()",
            str(busy.db_path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        result = backfills_report(busy)
    finally:
        holder.communicate("")
    assert result.returncode == 0, result.stderr
    assert "In progress (1)" in result.stdout


def test_missing_database(tmp_path) -> None:
    result = run_backfills("report", "--db", str(tmp_path / "nothing.duckdb"), cwd=tmp_path)
    assert result.returncode == 78 and "run backfills ingest first" in result.stderr


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("plain", "plain"),
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("a\x1b]0;title\x07b", "a\\x1b]0;title\\x07b"),
        ("line\r\nbreak", "line\\r\\nbreak"),
        ("back\x08space", "back\\x08space"),
        ("rtl\u202eoverride", "rtl\\u202eoverride"),
        ("café ✓", "café ✓"),
    ],
)
def test_clean(raw: str, shown: str) -> None:
    assert report.clean(raw) == shown


def test_json_and_csv_rows_of_two_teams_say_whose_they_are(
    sim: Simulator, api: Api, warehouse: Warehouse
) -> None:
    """The same backfill id can exist in two teams: every row names its team."""
    both = Warehouse(sim, warehouse.db_path, team_ids=(TEAM, OTHER_TEAM))
    for team in (TEAM, OTHER_TEAM):
        api.create(add_transfer(sim, failure_rate=1.0, team=team), days_ago(2), days_ago(1), team=team)
    sim.clock.advance(400)
    both.ingest()
    data = json.loads(backfills_report(both, "--format", "json").stdout)
    assert sorted(a["team_id"] for a in data["attention"]) == [OTHER_TEAM, TEAM]
    for section in ("attention", "incomplete", "transfers", "errors", "polls"):
        assert {row["team_id"] for row in data[section]} == {TEAM, OTHER_TEAM}, section
    rows = list(
        csv.DictReader(
            io.StringIO(backfills_report(both, "--format", "csv", "--section", "attention").stdout)
        )
    )
    assert sorted(int(r["team_id"]) for r in rows) == [OTHER_TEAM, TEAM]

"""Several polls in one run (the demo's way) store exactly what one run per poll stores."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from pipelines.ingest import ingest
from pipelines.simulator import Simulator, Timing, Workload

POLLS = 36
QUERIES = {
    "polls": "select poll_id, team_id, polled_at, outcome, http_status, backfills_listed, backfills_left "
    "from supermetrics.polls",
    "versions": "select * exclude (_dlt_id, _dlt_load_id) from supermetrics.backfill_versions",
    "errors": "select v.poll_id, v.transfer_backfill_id, e.transfer_run_date, e.error "
    "from supermetrics.backfill_versions__error_report e join supermetrics.backfill_versions v "
    "on e._dlt_parent_id = v._dlt_id",
    "events": "select * exclude (_dlt_id, _dlt_load_id) from supermetrics.listing_events",
    "lookups": "select poll_id, team_id, transfer_backfill_id, looked_up_at, outcome, status, http_status "
    "from supermetrics.backfill_lookups",
}


def busy_simulator() -> Simulator:
    workload = Workload(transfers_per_team=12, backfills_per_day=300, cancel_probability=0.3)
    quick = Timing(
        runs_created_after=(10, 60), pickup_after=(10, 60), run_bounds=(5, 20)
    )  # minutes-long backfills
    sim = Simulator(
        seed=5, speed=0, workload=workload, warmup=timedelta(hours=6), max_running=2, timing=quick
    )
    sim.faults.add(kind="503", endpoint="get", probability=0.4)  # lookups fail now and then
    return sim


def tables(db_path: Path) -> dict[str, list[tuple]]:
    with duckdb.connect(str(db_path), read_only=True) as con:
        return {name: sorted(con.execute(sql).fetchall(), key=repr) for name, sql in QUERIES.items()}


@pytest.mark.slow
def test_rounds_store_the_same_history_as_separate_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOURCES__SUPERMETRICS__API_KEY", "sim-key")
    with busy_simulator() as sim:
        for n in range(POLLS):
            if n:
                sim.clock.advance(300)
            # a lookup failing twice is a warning, retried next run: the run itself succeeds
            ingest(tmp_path / "separate.duckdb", team_ids=[936506], base_url=sim.base_url, build_models=False)
    with busy_simulator() as sim:
        result = ingest(
            tmp_path / "rounds.duckdb",
            team_ids=[936506],
            base_url=sim.base_url,
            rounds=POLLS,
            between_rounds=lambda: sim.clock.advance(300),
        )
    assert len(result.report.teams) == POLLS
    separate, rounds = tables(tmp_path / "separate.duckdb"), tables(tmp_path / "rounds.duckdb")
    assert len(separate["versions"]) > 100 and len(separate["lookups"]) > 10, "a busy scenario"
    assert any(row[4] == "failed" for row in separate["lookups"]), "with lookups to retry"
    for name in QUERIES:
        assert rounds[name] == separate[name], name


def test_lookups_cut_short_stay_pending_for_the_next_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOURCES__SUPERMETRICS__API_KEY", "sim-key")
    with Simulator(speed=0) as sim:
        ids = []
        for n in range(3):
            transfer = sim.world.add_transfer(936506).id
            day = (sim.clock.now() - timedelta(days=n + 1)).date()
            ids.append(sim.world.create(936506, transfer, day, day, 789).id)
        db = tmp_path / "cut.duckdb"
        ingest(db, team_ids=[936506], base_url=sim.base_url, build_models=False)
        for backfill_id in ids:
            sim.world.cancel(936506, backfill_id, 789)
        sim.faults.add(kind="503", endpoint="get", times=2)  # the first lookup fails twice: the API is down
        ingest(
            db,
            team_ids=[936506],
            base_url=sim.base_url,
            rounds=2,
            build_models=False,
            between_rounds=lambda: sim.clock.advance(300),
        )
    with duckdb.connect(str(db), read_only=True) as con:
        lookups = con.execute(
            "select poll_id, transfer_backfill_id, outcome from supermetrics.backfill_lookups "
            "order by poll_id, transfer_backfill_id"
        ).fetchall()
    # round one stopped after the failed lookup; round two looked up all three
    assert lookups == [(2, ids[0], "failed")] + [(3, backfill_id, "final") for backfill_id in ids]

"""The ground-truth test: every analytics table against what really happened in the simulator.

A seeded simulator with three teams (one so busy that its list hits the 100 cap), retries,
cancels with runs in flight, a short retention (finished backfills forgotten after 10 minutes)
and injected list and lookup faults is polled every 5 simulated minutes through the real ingest
path. The simulator's ledger holds the true history; `ground_truth_tables.Audit` compares every
value of every table with it. A difference passes only when it falls into a documented class of
what the API cannot show (`ground_truth.TOLERANCES`, docs/models.md "What the API cannot show");
every other value must match exactly. The per-table counts are printed (`make ground-truth`).

The models are built incrementally every few polls, as cron runs them; at the end a full refresh
of a copy must give the same tables row for row (the cap, late rechecks, forgotten backfills and
failed polls included).

The short run is part of `make test`; `make ground-truth` also runs two simulated days.
"""

from __future__ import annotations

import contextlib
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ground_truth import TOLERANCES, Truth
from ground_truth_tables import Audit
from test_chaos import tables

from pipelines.ingest import ingest, rebuild_models
from pipelines.simulator import Simulator, Timing, Workload
from pipelines.supermetrics.errors import MonitorError

BUSY, CALM = 111, (222, 333)
BUILD_EVERY = 4  # polls: each incremental build takes in several polls, as after failed runs
MAX_RUNNING = 3
# Warm-up from 18:00, polls from 22:00: the short run crosses midnight.
WARMUP_FROM = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)
WARMUP = timedelta(hours=4)


def simulator(seed: int) -> Simulator:
    sim = Simulator(
        seed=seed,
        speed=0,
        start=WARMUP_FROM,
        teams=(BUSY, *CALM),
        max_running=MAX_RUNNING,
        timing=Timing(run_bounds=(5, 90)),  # backfills finish within hours, not days
        retention=timedelta(minutes=10),
        keep_ledger=True,
    )
    # The busy team gets far more backfills than three slots can run: its queue passes 100.
    Workload(transfers_per_team=80, backfills_per_day=1200, cancel_probability=0.1).install(sim.world, [BUSY])
    Workload(transfers_per_team=5, backfills_per_day=60, cancel_probability=0.15).install(
        sim.world, list(CALM)
    )
    sim.clock.advance(WARMUP)
    sim.world.sync()
    sim.faults.add(kind="503", endpoint="list", probability=0.05)  # retried within the run
    sim.faults.add(kind="bad_json", endpoint="list", probability=0.03)  # a failed poll
    sim.faults.add(kind="cut_off", endpoint="list", probability=0.02)  # retried, or a failed poll
    sim.faults.add(kind="500", endpoint="get", probability=0.1)  # a lookup to try again next run
    return sim


def audit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hours: float, seed: int) -> dict:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "data" / "backfills.duckdb"
    # one team after another: the seeded faults hit calls in the order they arrive, so the
    # scenario repeats exactly (teams polled at once are proven equal in test_many_teams)
    monkeypatch.setenv("SOURCES__SUPERMETRICS__MAX_CONCURRENT_TEAMS", "1")
    # The audit holds the list's view of each backfill: `latest`, which finds backfills no poll
    # listed, is off here (test_sweep proves it); the runs sweep is on and audited run by run.
    monkeypatch.setenv("SOURCES__SUPERMETRICS__LATEST_CHECKS_PER_RUN", "0")
    with simulator(seed) as sim:
        monkeypatch.setenv("SOURCES__SUPERMETRICS__API_KEY", sim.api_key)
        for n in range(1, int(hours * 12) + 1):
            sim.clock.advance(300)
            # A failed poll is stored as such and audited like the others.
            with contextlib.suppress(MonitorError):
                ingest(db, team_ids=[BUSY, *CALM], base_url=sim.base_url, build_models=n % BUILD_EVERY == 0)
        built, _ = rebuild_models(db)
        runs = [run for team in sim.world.teams.values() for run in team.runs.values()]
        truth = Truth(sim.world.ledger, sim.answers, runs)
    assert built.mode == "incremental"
    assert_scenario_is_hard(truth)
    assert_full_refresh_equals_incremental(db)
    tallies = Audit(truth, db, MAX_RUNNING).run()
    print(f"\nground truth, {hours} h of polls, seed {seed}:")
    for table, tally in tallies.items():
        print(tally.line(table))
    return tallies


def assert_scenario_is_hard(truth: Truth) -> None:
    """The seeded run holds every situation the audit is about, or it would prove little."""
    polls = truth.polls
    assert any(len(a.listed) == 100 for a in polls), "the busy team's list never hit the cap"
    assert any(a.status != 200 or a.fault for a in polls), "no poll failed"
    assert any(a.status == 404 for b in truth.backfills.values() for a in b.lookups), "nothing forgotten"
    assert any(b.attempts()[1:] for b in truth.backfills.values()), "no retry reset a failure count"
    in_flight = [
        b
        for b in truth.backfills.values()
        if b.final["status"] == "CANCELLED"
        and any(c.state["status"] == "CANCELLED" for c in b.changes[:-1])  # it changed after the cancel
    ]
    assert in_flight, "no cancel with a run in flight"


def assert_full_refresh_equals_incremental(db: Path) -> None:
    full = db.with_name("full.duckdb")
    shutil.copy(db, full)
    built, _ = rebuild_models(full, full_refresh=True)
    assert built.mode == "full refresh: asked for"
    incremental, refreshed = tables(db), tables(full)
    assert [name for name in incremental if incremental[name] != refreshed[name]] == []


def assert_all_explained(tallies: dict) -> None:
    unexplained = {table: t.unexplained[:5] for table, t in tallies.items() if t.unexplained}
    assert unexplained == {}
    assert all(k in TOLERANCES for t in tallies.values() for k in t.tolerated)
    assert sum(t.matched for t in tallies.values()) > 10_000  # the audit really compared


@pytest.mark.timeout(600)  # a loaded machine makes every run slower, never wrong
@pytest.mark.slow
def test_every_table_matches_the_truth_but_for_what_the_api_cannot_show(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert_all_explained(audit(tmp_path, monkeypatch, hours=4, seed=5))


@pytest.mark.long
@pytest.mark.timeout(3600)
def test_two_days_match_the_truth(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert_all_explained(audit(tmp_path, monkeypatch, hours=48, seed=6))

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

import duckdb
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


SCRIPTED_TEAM = 444


def test_cancels_forgotten_backfills_and_latest_finds_match_the_truth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the list cannot show, scripted three times over three simulated hours and compared
    with the simulator's ledger and runs: a backfill cancelled while a 25-minute run is in flight
    (the run ends and counts 17 minutes after the cancel), one the API forgets between its
    completion and the lookup after it left the list, and one created and finished between two
    polls (found by `latest`). Every backfill's final counters, status, runs and last end must be
    the truth's, and every one must have a last_seen_at."""
    monkeypatch.chdir(tmp_path)
    exact = Timing(
        runs_created_after=(60, 60), pickup_after=(60, 60), gap_between_runs=(10, 10), run_sigma=0.0
    )
    db = tmp_path / "data" / "backfills.duckdb"
    with Simulator(
        seed=8,
        speed=0,
        start=WARMUP_FROM,
        teams=(SCRIPTED_TEAM,),
        workload=None,
        timing=exact,
        keep_ledger=True,
    ) as sim:
        monkeypatch.setenv("SOURCES__SUPERMETRICS__API_KEY", sim.api_key)
        world = sim.world
        slow = world.add_transfer(SCRIPTED_TEAM, failure_rate=0.0, median_run_seconds=1500).id
        quick = world.add_transfer(SCRIPTED_TEAM, failure_rate=0.0, median_run_seconds=60).id
        day = WARMUP_FROM.date() - timedelta(days=1)  # backfills cover dates before today
        cancelled, forgotten = [], []

        def at(seconds: int) -> None:  # the world exactly at `seconds` into the current hour
            sim.clock.advance(hour_start + timedelta(seconds=seconds) - sim.clock.now())
            world.sync()

        def poll() -> None:
            ingest(db, team_ids=[SCRIPTED_TEAM], base_url=sim.base_url, build_models=False)

        for hour in range(3):
            hour_start = WARMUP_FROM + timedelta(hours=hour)
            # the slow one: RUNNING at +120, its first run +130..+1630, cancelled at +600
            first, last = day - timedelta(days=10 * hour + 2), day - timedelta(days=10 * hour)
            cancelled.append(world.create(SCRIPTED_TEAM, slow, first, last, 1).id)
            for seconds in range(0, 3600, 300):
                if seconds == 900:  # listed once (CREATED) by the poll at +900, COMPLETED at +1090
                    at(890)
                    one_day = day - timedelta(days=100 + 2 * hour)
                    forgotten.append(world.create(SCRIPTED_TEAM, quick, one_day, one_day, 1).id)
                if seconds == 1200:  # forgotten before the poll that finds it gone
                    at(1190)
                    world.forget(SCRIPTED_TEAM, forgotten[-1])
                at(seconds)
                if seconds == 600:
                    world.cancel(SCRIPTED_TEAM, cancelled[-1], 789)
                poll()
                if seconds == 1500:  # created just after this poll, done at +1710: never listed
                    at(1510)
                    one_day = day - timedelta(days=101 + 2 * hour)
                    world.create(SCRIPTED_TEAM, quick, one_day, one_day, 1)
        at(3600)
        poll()
        rebuild_models(db)
        runs = [run for team in world.teams.values() for run in team.runs.values()]
        truth = Truth(world.ledger, sim.answers, runs)

    with duckdb.connect(str(db), read_only=True) as con:
        rows = {
            row[0]: row[1:]
            for row in con.execute(
                "select transfer_backfill_id, status, transfer_runs_completed, runs_known, "
                "last_run_ended_at, last_seen_at, learnt_from from analytics.backfills"
            ).fetchall()
        }
    assert set(rows) == set(truth.backfills)  # every one, the never-listed ones found by latest
    found_by_latest = {b for b, row in rows.items() if row[5] == "latest"}
    assert len(cancelled) == len(forgotten) == len(found_by_latest) == 3
    for backfill_id, truth_of in truth.backfills.items():
        status, completed, runs_known, last_ended, last_seen, _ = rows[backfill_id]
        true_runs = [run for run in truth.runs if run.backfill_id == backfill_id]
        final = truth_of.final
        if backfill_id in forgotten:  # its one sighting, CREATED; its final state is unknown
            assert (status, completed) == ("UNKNOWN", 0), backfill_id
        else:
            assert (status, completed) == (final["status"], final["transfer_runs_completed"]), backfill_id
        assert runs_known == len(true_runs) and last_seen is not None, backfill_id
        assert last_ended == max(run.ended_time for run in true_runs).replace(microsecond=0), backfill_id
    for backfill_id in cancelled:  # the run in flight ended well after the cancel, and counts
        assert truth.backfills[backfill_id].final["transfer_runs_completed"] == 1

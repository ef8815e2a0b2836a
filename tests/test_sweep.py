"""The sweep after each poll: transfers, `latest` and backfill runs, through the real ingest into
a real DuckDB file, with expectations worked out by hand from FIXED_TIMING (see conftest).

A lone backfill of n days on a transfer whose runs take 100 s, created at T: SCHEDULED at T+60,
RUNNING at T+120; its k-th run (newest day first) is created at T+20+110k and ends 100 s later;
it finishes at T+130+110n. Transfer 456001 is the first transfer a test adds.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from conftest import START, TEAM, Api, Warehouse, add_transfer, days_ago, poll_requests

from pipelines.simulator import Simulator
from pipelines.supermetrics.errors import ConfigError


@pytest.fixture(autouse=True)
def built_when_read(warehouse: Warehouse) -> None:
    """The sweep is in the raw tables: the models are built when a test reads them."""
    warehouse.build_models = False


def backfill_runs(warehouse: Warehouse) -> list[tuple]:
    return warehouse.rows(
        "select transfer_backfill_id, data_date::varchar, attempt, status, duration_seconds "
        "from analytics.backfill_runs order by created_time"
    )


def sweep_log(warehouse: Warehouse) -> list[tuple]:
    return warehouse.rows(
        "select poll_id, kind, outcome, requests, found from supermetrics.api_sweeps order by poll_id, kind"
    )


def test_every_attempt_is_stored_once_a_retry_between_two_polls_included(
    sim: Simulator, api: Api, warehouse: Warehouse
) -> None:
    transfer = add_transfer(sim, failure_rate=1.0, run_seconds=100)
    backfill = api.create(transfer, days_ago(2), days_ago(1))["transfer_backfill_id"]
    sim.clock.advance(150)  # T+150: the first run (2026-01-04, created T+130) is running
    first = warehouse.ingest()
    # the list, then the sweep: the transfer list, the transfer's latest backfill (the listed one:
    # nothing new), one page of runs from the backfill's creation on
    assert (first.report.requests, poll_requests(first)) == (4, 1)
    sim.clock.advance(250)  # T+400: both runs failed (T+230, T+340); FAILED at T+350
    assert poll_requests(second := warehouse.ingest()) == 1 and second.report.requests == 3
    sim.world.retry(TEAM, backfill)  # at T+400, RUNNING at once: runs at T+410 and T+520, both fail
    sim.clock.advance(300)  # T+700: FAILED again; no poll saw the retry
    warehouse.ingest()
    assert backfill_runs(warehouse) == [
        (backfill, "2026-01-04", 1, "FAILED", 100.0),
        (backfill, "2026-01-03", 1, "FAILED", 100.0),
        (backfill, "2026-01-04", 2, "FAILED", 100.0),
        (backfill, "2026-01-03", 2, "FAILED", 100.0),
    ]
    # stored once each, plus the first run's RUNNING version from T+150
    assert warehouse.count("transfer_runs") == 5
    assert warehouse.rows(
        "select runs_known, run_attempts_failed, transfer_runs_failed, transfer_name from analytics.backfills"
    ) == [(4, 4, 2, f"TikTok Ads {transfer}")]
    # durations are of COMPLETED runs: none here
    assert warehouse.rows(
        "select exact_runs_failed, exact_failure_rate, run_duration_median_seconds, transfer_name "
        "from analytics.transfer_failure_rates"
    ) == [(4, 1.0, None, f"TikTok Ads {transfer}")]
    assert sweep_log(warehouse) == [
        (1, "latest", "ok", 1, backfill),
        (1, "runs", "ok", 1, 1),
        (1, "transfers", "ok", 1, 1),
        (2, "latest", "ok", 1, backfill),
        (2, "runs", "ok", 1, 2),  # the first run now FAILED, the second new
        (3, "latest", "ok", 1, backfill),
        (3, "runs", "ok", 1, 2),
    ]


def test_a_backfill_that_lived_between_two_polls_is_found_with_its_true_times(
    sim: Simulator, api: Api, warehouse: Warehouse
) -> None:
    transfer = add_transfer(sim, run_seconds=100)
    warehouse.ingest()  # T: nothing listed; the sweep learns the transfer, latest says none yet
    sim.clock.advance(10)
    backfill = api.create(transfer, days_ago(1), days_ago(1))["transfer_backfill_id"]  # at T+10
    sim.clock.advance(290)  # T+300: it ran at T+140..T+240 and COMPLETED at T+250, unseen by the list
    warehouse.ingest()
    assert warehouse.rows(
        "select transfer_backfill_id, status, learnt_from, first_seen_at = last_seen_at, created_time, "
        "start_time, end_time, first_run_at, last_run_ended_at, runs_known, rows_loaded "
        "from analytics.backfills"
    ) == [
        (
            backfill,
            "COMPLETED",
            "latest",
            True,  # the one sighting: `latest`'s answer at T+300
            START + timedelta(seconds=10),
            START + timedelta(seconds=130),
            START + timedelta(seconds=250),
            START + timedelta(seconds=140),
            START + timedelta(seconds=240),
            1,
            sim.world.transfer_runs(TEAM, transfer)[0].total_rows,
        )
    ]
    assert backfill_runs(warehouse) == [(backfill, "2026-01-04", 1, "COMPLETED", 100.0)]
    warehouse.ingest()  # asked again: nothing new is stored
    assert warehouse.count("backfill_versions") == 1 and warehouse.count("transfer_runs") == 1


def test_runs_across_pages_and_two_backfills_of_one_transfer(
    sim: Simulator, api: Api, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__SUPERMETRICS__RUNS_PAGE_SIZE", "2")
    transfer = add_transfer(sim, run_seconds=100)
    first = api.create(transfer, days_ago(5), days_ago(1))["transfer_backfill_id"]
    sim.clock.advance(800)  # 5 runs, created T+130 .. T+570; COMPLETED at T+680
    result = warehouse.ingest()
    # 5 runs newest first in pages of 2: 2, 2, 1 (a short page ends it)
    assert result.report.teams[0].sweep_requests == 1 + 1 + 3
    second = api.create(transfer, days_ago(3), days_ago(2))["transfer_backfill_id"]  # T+800, same days
    sim.clock.advance(400)  # its 2 runs: created T+930 and T+1040
    result = warehouse.ingest()
    assert result.report.teams[0].runs_stored == 2
    assert [(b, day, attempt) for b, day, attempt, *_ in backfill_runs(warehouse)] == [
        (first, "2026-01-04", 1),
        (first, "2026-01-03", 1),
        (first, "2026-01-02", 1),
        (first, "2026-01-01", 1),
        (first, "2025-12-31", 1),
        (second, "2026-01-03", 1),  # the same days again, created after the first one ended
        (second, "2026-01-02", 1),
    ]


def test_a_failing_runs_endpoint_never_blocks_the_poll_and_resumes_its_window(
    sim: Simulator, api: Api, warehouse: Warehouse
) -> None:
    transfer = add_transfer(sim, run_seconds=100)
    api.create(transfer, days_ago(2), days_ago(1))
    sim.clock.advance(400)  # both runs done (T+230, T+340)
    sim.faults.add(kind="404", endpoint="runs", times=1)
    result = warehouse.ingest()
    assert result.report.errors == [] and result.report.teams[0].ok
    assert any("listing runs of transfer" in w and "next run" in w for w in result.report.warnings)
    assert warehouse.count("polls") == 1 and warehouse.count("transfer_runs") == 0
    sim.clock.advance(300)
    warehouse.ingest()  # the window starts where the failed one did: both runs, once
    assert warehouse.count("transfer_runs") == 2
    assert [(kind, outcome) for _, kind, outcome, *_ in sweep_log(warehouse) if kind == "runs"] == [
        ("runs", "failed"),
        ("runs", "ok"),
    ]


def test_the_budget_defers_the_other_transfers_to_the_next_runs_first(
    sim: Simulator, api: Api, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__SUPERMETRICS__MAX_SWEEP_REQUESTS", "2")
    monkeypatch.setenv("SOURCES__SUPERMETRICS__LATEST_CHECKS_PER_RUN", "0")
    one, two, three = (add_transfer(sim, run_seconds=100) for _ in range(3))
    for transfer in (one, two, three):
        api.create(transfer, days_ago(3), days_ago(1))
    sim.clock.advance(300)  # all three RUNNING (3 slots), created at the same instant
    first = warehouse.ingest()  # the transfer list and the first transfer's runs: the others wait
    assert first.report.teams[0].sweep_requests == 2
    runs_log = "select transfer_id, outcome from supermetrics.api_sweeps where kind = 'runs' and poll_id = ?"
    assert warehouse.rows(runs_log + " order by transfer_id", 1) == [
        (one, "ok"),
        (two, "deferred"),
        (three, "deferred"),
    ]
    monkeypatch.setenv("SOURCES__SUPERMETRICS__MAX_SWEEP_REQUESTS", "1")
    sim.clock.advance(300)
    warehouse.ingest()  # one request: a deferred transfer goes first (the windows start alike)
    # three stays deferred as logged at poll 1; one is deferred now
    assert warehouse.rows(runs_log + " order by transfer_id", 2) == [(one, "deferred"), (two, "ok")]
    monkeypatch.setenv("SOURCES__SUPERMETRICS__MAX_SWEEP_REQUESTS", "10")
    sim.clock.advance(300)
    warehouse.ingest()  # T+900: the backfills ended at T+460; the two windows still due
    assert warehouse.rows(runs_log + " order by transfer_id", 3) == [(one, "ok"), (three, "ok")]
    # each run of each backfill stored once, whenever its transfer's window came
    assert warehouse.rows(
        "select transfer_id, count(distinct run_id) from supermetrics.transfer_runs group by 1 order by 1"
    ) == [(one, 3), (two, 3), (three, 3)]


def test_the_sweep_can_be_turned_off(
    sim: Simulator, api: Api, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__SUPERMETRICS__SWEEP", "false")
    api.create(add_transfer(sim), days_ago(1), days_ago(1))
    result = warehouse.ingest()
    assert result.report.requests == 1 and result.report.sweep_budget == 0
    assert warehouse.rows("select count(*) from analytics.backfill_runs") == [(0,)]
    assert warehouse.rows("select transfer_name, is_in_transfer_list from analytics.transfers") == [
        (None, False)
    ]
    monkeypatch.setenv("SOURCES__SUPERMETRICS__RUNS_PAGE_SIZE", "10001")
    with pytest.raises(ConfigError, match="runs_page_size = 10001 is over the API's maximum of 10000"):
        warehouse.ingest()


def test_a_transfer_the_list_lacks_is_asked_for_at_most_hourly(
    sim: Simulator, api: Api, warehouse: Warehouse
) -> None:
    add_transfer(sim)
    warehouse.ingest()  # T: the transfer list is read
    newer = add_transfer(sim, run_seconds=100)
    api.create(newer, days_ago(30), days_ago(1))  # a long one: listed on every poll below
    names = "select transfer_id, transfer_name is not null from analytics.transfers order by 1"
    refreshes = "select count(*) from supermetrics.api_sweeps where kind = 'transfers'"
    for _ in range(11):  # T+300 .. T+3300: the list was read less than an hour ago
        sim.clock.advance(300)
        warehouse.ingest()
    assert warehouse.rows(refreshes) == [(1,)] and warehouse.rows(names)[-1] == (newer, False)
    sim.clock.advance(300)  # T+3600: an hour since the list was read
    warehouse.ingest()
    assert warehouse.rows(refreshes) == [(2,)] and warehouse.rows(names)[-1] == (newer, True)


def test_windows_are_contiguous_so_a_newer_backfill_never_skips_an_older_ones_runs(
    sim: Simulator, api: Api, warehouse: Warehouse
) -> None:
    transfer = add_transfer(sim, run_seconds=100)
    first = api.create(transfer, days_ago(3), days_ago(1))["transfer_backfill_id"]
    sim.clock.advance(150)  # T+150: its first run (created T+130) is running
    warehouse.ingest()
    sim.clock.advance(350)  # T+500: its other runs were created at T+240 and T+350; done at T+460
    second = api.create(transfer, days_ago(5), days_ago(5))["transfer_backfill_id"]
    sim.faults.add(kind="404", endpoint="get", times=1)  # the first's lookup: the API forgot it
    sim.clock.advance(100)  # T+600: the second is listed, the first is seen nowhere
    warehouse.ingest()
    # the window goes on from the last one, not from the second backfill's creation
    assert [(b, day, status) for b, day, _, status, _ in backfill_runs(warehouse)] == [
        (first, "2026-01-04", "COMPLETED"),
        (first, "2026-01-03", "COMPLETED"),
        (first, "2026-01-02", "COMPLETED"),
    ]
    assert warehouse.rows(
        "select status from analytics.backfills where transfer_backfill_id = ?", second
    ) == [("SCHEDULED",)]


def test_a_backfill_cancelled_with_a_run_in_flight_is_followed_until_the_run_ends(
    sim: Simulator, api: Api, warehouse: Warehouse
) -> None:
    """Runs of 3000 s: a three-day backfill created at T is RUNNING at T+120; its first run, created
    at T+130, ends at T+3130. Cancelled at T+600, it keeps that run, which then counts as completed."""
    transfer = add_transfer(sim, run_seconds=3000)
    backfill = api.create(transfer, days_ago(3), days_ago(1))["transfer_backfill_id"]
    sim.clock.advance(300)
    warehouse.ingest()  # T+300: RUNNING, its first run in flight
    sim.clock.advance(300)
    sim.world.cancel(TEAM, backfill, 789)  # T+600
    for _ in range(10):  # T+900 .. T+3600, every 5 minutes: the lookups saw nothing move until T+3130
        sim.clock.advance(300)
        warehouse.ingest()
    assert warehouse.rows(
        "select status, transfer_runs_completed, progress_pct, runs_known, last_run_ended_at "
        "from analytics.backfills"
    ) == [("CANCELLED", 1, 33.33, 1, START + timedelta(seconds=3130))]
    assert backfill_runs(warehouse) == [(backfill, "2026-01-04", 1, "COMPLETED", 3000.0)]
    lookups = warehouse.rows("select poll_id from supermetrics.backfill_lookups order by poll_id")
    assert lookups == [(n,) for n in range(2, 12)]  # T+900 .. T+3300 and T+3600: then no more
    warehouse.ingest()
    assert warehouse.count("backfill_lookups") == 10


def test_a_backfill_the_api_forgets_after_it_left_the_list_gets_its_runs_swept(
    sim: Simulator, api: Api, warehouse: Warehouse
) -> None:
    """Listed once, queued (T+30); its run is T+130..T+230, COMPLETED at T+240; the API forgets it
    before the next poll (T+300), whose lookup gets 404: its transfer's runs are swept all the same."""
    transfer = add_transfer(sim, run_seconds=100)
    backfill = api.create(transfer, days_ago(1), days_ago(1))["transfer_backfill_id"]
    sim.clock.advance(30)
    warehouse.ingest()  # CREATED: no run yet
    sim.clock.advance(270)
    sim.world.sync()  # the world up to T+300: it ran and COMPLETED
    sim.world.forget(TEAM, backfill)
    warehouse.ingest()  # T+300: left the list, the lookup says 404
    assert warehouse.rows(
        "select status, runs_known, first_run_at, last_run_ended_at from analytics.backfills"
    ) == [("UNKNOWN", 1, START + timedelta(seconds=130), START + timedelta(seconds=230))]
    assert backfill_runs(warehouse) == [(backfill, "2026-01-04", 1, "COMPLETED", 100.0)]

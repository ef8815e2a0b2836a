"""The analytics models on hand-worked scenarios: every expected value is computed from the
simulator's fixed timings (conftest.FIXED_TIMING), not read off the program.

A lone backfill of n runs of 100 s created at T (2026-01-05 08:00 UTC): SCHEDULED at T+60,
RUNNING at T+120, k runs done at T+120+110k, finished at T+130+110n.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from conftest import START, TEAM, Api, Warehouse, add_transfer, days_ago

from pipelines.ingest import rebuild_models
from pipelines.simulator import Simulator
from pipelines.supermetrics.errors import ApiUnavailableError


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def poll_at(sim: Simulator, warehouse: Warehouse, seconds: float) -> None:
    sim.clock.advance(at(seconds) - sim.clock.now())
    warehouse.ingest()


@pytest.fixture(autouse=True)
def models_built_when_read(warehouse: Warehouse) -> None:
    warehouse.build_models = False


def one(warehouse: Warehouse, sql: str, *params: object) -> dict:
    with warehouse.connect(sql) as con:
        cursor = con.execute(sql, list(params))
        names = [d[0] for d in cursor.description]
        rows = cursor.fetchall()
    assert len(rows) == 1, rows
    return dict(zip(names, rows[0], strict=True))


def backfill(warehouse: Warehouse, backfill_id: int) -> dict:
    return one(warehouse, "select * from analytics.backfills where transfer_backfill_id = ?", backfill_id)


def stretches(warehouse: Warehouse, backfill_id: int) -> list[tuple]:
    return warehouse.rows(
        "select status, valid_from, valid_to, duration_seconds from analytics.backfill_status_history "
        "where transfer_backfill_id = ? order by stretch_number",
        backfill_id,
    )


def test_steady_run_durations_rate_and_eta(sim: Simulator, api: Api, warehouse: Warehouse) -> None:
    backfill_id = api.create(add_transfer(sim, run_seconds=100), days_ago(30), days_ago(1))[
        "transfer_backfill_id"
    ]
    for seconds in (0, 60, 120, 1220):  # CREATED, SCHEDULED, RUNNING with 0 runs, 10 runs done
        poll_at(sim, warehouse, seconds)

    running = backfill(warehouse, backfill_id)
    assert (running["status"], running["is_incomplete"], running["is_stalled"]) == ("RUNNING", True, False)
    assert running["queue_seconds"] == 120
    assert running["run_seconds"] == 1100  # up to the latest poll
    assert running["progress_pct"] == pytest.approx(33.33)
    assert running["failure_rate"] == 0
    assert running["runs_per_hour"] == pytest.approx(3600 * 10 / 1100)  # 10 runs in 1100 s
    assert running["eta"] == at(1220 + 20 * 110)  # 20 runs left at 110 s: T+3420, 10 s before the real end
    assert (
        running["first_seen_at"] == at(0)
        and running["vanished_at"] is None
        and running["finished_at"] is None
    )
    assert running["range_days"] == 30 and running["error_count"] == 0
    assert stretches(warehouse, backfill_id) == [
        ("CREATED", at(0), at(60), 60),
        ("SCHEDULED", at(60), at(120), 60),
        ("RUNNING", at(120), None, 1100),
    ]
    progress = warehouse.rows(
        "select progress_pct, transfer_runs_completed from analytics.backfill_progress order by poll_id"
    )
    assert progress == [(0, 0), (0, 0), (0, 0), (pytest.approx(33.33), 10)]

    poll_at(sim, warehouse, 3430)  # finished at T+130+30*110: left the list, looked up
    done = backfill(warehouse, backfill_id)
    assert (done["status"], done["is_incomplete"]) == ("COMPLETED", False)
    assert done["end_time"] == done["finished_at"] == done["vanished_at"] == at(3430)
    assert done["run_seconds"] == 3310
    assert done["runs_per_hour"] == pytest.approx(3600 * 30 / 3310)  # up to the end
    assert done["eta"] is None and done["progress_pct"] == 100
    assert stretches(warehouse, backfill_id)[-2:] == [
        ("RUNNING", at(120), at(3430), 3310),
        ("COMPLETED", at(3430), None, None),
    ]
    day = one(warehouse, "select * from analytics.daily_activity where day = ?", date(2026, 1, 5))
    assert day == {
        "day": date(2026, 1, 5),
        "team_id": TEAM,
        "backfills_created": 1,
        "backfills_started": 1,
        "backfills_finished": 1,
        "backfills_active": 1,
        "runs_completed": 30,
        "runs_failed": 0,
        "is_fully_observed": False,  # monitoring began at 08:00 that day: a partial day
    }


def test_failures_retry_and_distinct_errors(sim: Simulator, api: Api, warehouse: Warehouse) -> None:
    transfer = add_transfer(sim, failure_rate=1.0, run_seconds=100)
    backfill_id = api.create(transfer, days_ago(3), days_ago(1))["transfer_backfill_id"]
    poll_at(sim, warehouse, 0)
    poll_at(sim, warehouse, 460)  # three runs failed: FAILED
    failed = backfill(warehouse, backfill_id)
    assert (failed["status"], failed["transfer_runs_failed"], failed["error_count"]) == ("FAILED", 3, 3)
    assert failed["failure_rate"] == 1.0 and failed["run_seconds"] == 340  # start to first seen FAILED
    assert failed["is_stalled"] is False  # FAILED waits for a person, it is not stuck

    sim.world.teams[TEAM].transfers[transfer].failure_rate = 0.0
    sim.world.retry(TEAM, backfill_id)  # RUNNING again at T+460: runs at T+570, 680, 790; done T+800
    poll_at(sim, warehouse, 470)
    poll_at(sim, warehouse, 800)

    done = backfill(warehouse, backfill_id)
    assert (done["status"], done["transfer_runs_completed"], done["transfer_runs_failed"]) == (
        "COMPLETED",
        3,
        0,
    )
    assert done["error_count"] == 3  # the API forgot them on retry; the history did not
    # 6 runs executed, 3 failed: the honest rate; the API's counters of the last attempt say 0
    assert (done["runs_failed_all_attempts"], done["failure_rate"], done["failure_rate_current_attempt"]) == (
        3,
        0.5,
        0,
    )
    assert done["run_seconds"] == 680
    assert stretches(warehouse, backfill_id) == [
        ("CREATED", at(0), at(460), 460),
        ("FAILED", at(460), at(470), 10),
        ("RUNNING", at(470), at(800), 330),
        ("COMPLETED", at(800), None, None),
    ]
    errors = warehouse.rows(
        "select transfer_run_date, first_seen_at, last_seen_at from analytics.backfill_errors "
        "order by transfer_run_date"
    )
    assert errors == [(days_ago(n), at(460), at(460)) for n in (3, 2, 1)]
    rates = one(warehouse, "select * from analytics.transfer_failure_rates where transfer_id = ?", transfer)
    assert (rates["backfills"], rates["backfills_completed"], rates["backfills_incomplete"]) == (1, 1, 0)
    assert (rates["runs_completed"], rates["runs_failed"], rates["failure_rate"]) == (3, 3, 0.5)
    assert rates["median_run_seconds"] == rates["p95_run_seconds"] == 680
    assert rates["last_error"] in {
        e for (e,) in warehouse.rows("select error from analytics.backfill_errors")
    }
    assert warehouse.rows("select sum(occurrences), sum(backfills) >= 1 from analytics.error_summary") == [
        (3, True)
    ]
    day = one(
        warehouse,
        "select runs_completed, runs_failed from analytics.daily_activity where day = ?",
        date(2026, 1, 5),
    )
    assert day == {"runs_completed": 3, "runs_failed": 3}


def test_failures_of_a_retried_attempt_count_from_zero(
    sim: Simulator, api: Api, warehouse: Warehouse
) -> None:
    """FAILED f=6 -> (retry) RUNNING f=2 -> FAILED f=6: 12 runs failed, though the counter never
    goes above 6 (the API resets it on a retry)."""
    transfer = add_transfer(sim, failure_rate=1.0, run_seconds=100)
    backfill_id = api.create(transfer, days_ago(6), days_ago(1))["transfer_backfill_id"]
    poll_at(sim, warehouse, 0)
    poll_at(sim, warehouse, 790)  # 6 runs done at T+120+110k, k = 6 at T+780: FAILED at T+790
    sim.world.retry(TEAM, backfill_id)  # RUNNING at once: runs done at T+900, 1010, ..., 1450
    poll_at(sim, warehouse, 1015)  # the new attempt: 2 failed
    poll_at(sim, warehouse, 1460)  # FAILED again with 6
    failed = backfill(warehouse, backfill_id)
    assert (failed["status"], failed["transfer_runs_failed"], failed["runs_failed_all_attempts"]) == (
        "FAILED",
        6,
        12,
    )
    assert failed["failure_rate"] == 1.0
    rates = one(warehouse, "select * from analytics.transfer_failure_rates where transfer_id = ?", transfer)
    assert (rates["runs_completed"], rates["runs_failed"]) == (0, 12)
    day = one(warehouse, "select runs_failed from analytics.daily_activity where day = ?", date(2026, 1, 5))
    assert day == {"runs_failed": 12}


def test_days_are_flagged_unless_polls_span_them(sim: Simulator, api: Api, warehouse: Warehouse) -> None:
    api.create(add_transfer(sim), days_ago(2), days_ago(1))
    poll_at(sim, warehouse, 0)  # Jan 5, 08:00: monitoring begins
    poll_at(sim, warehouse, 2 * 86_400)  # Jan 7, 08:00: Jan 6 lies wholly between two successful polls
    assert warehouse.rows("select day, is_fully_observed from analytics.daily_activity order by day") == [
        (date(2026, 1, 5), False),
        (date(2026, 1, 6), True),
        (date(2026, 1, 7), False),
    ]


def test_waiting_for_a_slot_is_not_stalled(sim: Simulator, api: Api, warehouse: Warehouse) -> None:
    ids = [
        api.create(add_transfer(sim, run_seconds=100), days_ago(100), days_ago(1))["transfer_backfill_id"]
        for _ in range(4)
    ]
    poll_at(sim, warehouse, 0)
    poll_at(sim, warehouse, 120)  # three RUNNING (the team's limit), the fourth SCHEDULED
    poll_at(sim, warehouse, 120 + 2 * 3600 + 60)  # 2 h later: 100 runs of 110 s are far from done
    rows = warehouse.rows(
        "select transfer_backfill_id, status, is_waiting_for_slot, is_stalled from analytics.backfills "
        "order by transfer_backfill_id"
    )
    assert rows == [(b, "RUNNING", False, False) for b in ids[:3]] + [(ids[3], "SCHEDULED", True, False)]


def test_stall_after_a_configurable_time(
    sim: Simulator, api: Api, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    backfill_id = api.create(add_transfer(sim, run_seconds=3000), days_ago(2), days_ago(1))[
        "transfer_backfill_id"
    ]
    monkeypatch.setenv("MODELS__STALL_AFTER_HOURS", "0.5")  # 1800 s; the first run takes 3000 s
    poll_at(sim, warehouse, 120)  # RUNNING: the last progress
    poll_at(sim, warehouse, 120 + 1800)
    assert backfill(warehouse, backfill_id)["is_stalled"] is False  # exactly the threshold: not yet
    poll_at(sim, warehouse, 120 + 1801)
    stalled = backfill(warehouse, backfill_id)
    assert stalled["is_stalled"] is True and stalled["last_progress_at"] == at(120)
    monkeypatch.setenv("MODELS__STALL_AFTER_HOURS", "2")
    rebuild_models(warehouse.db_path)
    assert backfill(warehouse, backfill_id)["is_stalled"] is False
    poll_at(sim, warehouse, 3130)  # the first run is done: progress again
    assert backfill(warehouse, backfill_id)["last_progress_at"] == at(3130)


def test_unconfirmed_final_state_is_unknown(sim: Simulator, api: Api, warehouse: Warehouse) -> None:
    backfill_id = api.create(add_transfer(sim), days_ago(2), days_ago(1))["transfer_backfill_id"]
    poll_at(sim, warehouse, 60)
    sim.world.forget(TEAM, backfill_id)  # the lookup will answer 404
    poll_at(sim, warehouse, 120)
    gone = backfill(warehouse, backfill_id)
    assert (gone["status"], gone["is_incomplete"], gone["vanished_at"]) == ("UNKNOWN", False, at(120))
    assert gone["finished_at"] is None and gone["last_seen_at"] == at(60)
    assert stretches(warehouse, backfill_id) == [
        ("SCHEDULED", at(60), at(120), 60),
        ("UNKNOWN", at(120), None, None),
    ]
    day = one(warehouse, "select backfills_active, backfills_finished from analytics.daily_activity")
    assert day == {"backfills_active": 1, "backfills_finished": 0}


def test_a_final_state_found_by_a_later_lookup_starts_when_the_backfill_vanished(
    sim: Simulator, api: Api, warehouse: Warehouse
) -> None:
    backfill_id = api.create(add_transfer(sim, run_seconds=100), days_ago(2), days_ago(1))[
        "transfer_backfill_id"
    ]
    poll_at(sim, warehouse, 240)  # RUNNING; both runs done and COMPLETED at T+350
    sim.faults.add(kind="503", endpoint="get", times=100)  # every attempt of this run's lookup
    poll_at(sim, warehouse, 400)  # left the list; its lookup fails: looked up again next run
    sim.faults.clear()
    poll_at(sim, warehouse, 500)  # the lookup: COMPLETED
    assert warehouse.rows("select poll_id, outcome from supermetrics.backfill_lookups order by poll_id") == [
        (2, "failed"),
        (3, "final"),
    ]
    assert stretches(warehouse, backfill_id)[-2:] == [
        ("RUNNING", at(240), at(400), 160),  # first seen at T+240
        ("COMPLETED", at(400), None, None),  # since it left the list, not since the lookup
    ]


def test_failed_poll_shows_in_analytics_at_once(sim: Simulator, api: Api, warehouse: Warehouse) -> None:
    api.create(add_transfer(sim), days_ago(2), days_ago(1))
    warehouse.ingest()
    sim.faults.add(kind="503", endpoint="list", times=2)
    with pytest.raises(ApiUnavailableError):
        warehouse.ingest()
    failed = one(warehouse, "select * from analytics.polls where poll_id = 2")
    assert (failed["outcome"], failed["http_status"], failed["backfills_listed"]) == ("failed", 503, None)
    assert failed["error_code"] == "SERVICE_UNAVAILABLE" and failed["request_id"]
    # the failed poll is no listing: the backfill has one progress row, from poll 1
    assert warehouse.rows("select poll_id from analytics.backfill_progress") == [(1,)]


def test_hidden_by_the_cap_stays_incomplete(sim: Simulator, api: Api, warehouse: Warehouse) -> None:
    transfer = add_transfer(sim)
    for n in range(101):
        api.create(transfer, days_ago(n + 1), days_ago(n + 1))
    warehouse.ingest()  # 100 listed: the oldest was never listed
    api.create(transfer, days_ago(200), days_ago(200))  # pushes one more off
    warehouse.ingest()
    # all were created at T: the list's newest-first order is by id, so 10002 went off it
    hidden = warehouse.rows(
        "select transfer_backfill_id, status, is_incomplete from analytics.backfills "
        "where vanished_at is not null"
    )
    assert hidden == [(10002, "CREATED", True)]  # the lookup confirmed it is still incomplete
    assert warehouse.count("backfill_lookups") == 1
    assert warehouse.rows("select bool_and(possibly_truncated) from analytics.polls") == [(True,)]

    sim.world.cancel(TEAM, 10002, 789)  # cancelled while hidden: only a lookup can tell
    warehouse.ingest()  # the recheck: CANCELLED
    warehouse.ingest()  # once more (counters could move), unchanged: done
    warehouse.ingest()
    assert warehouse.rows(
        "select status, is_incomplete from analytics.backfills where transfer_backfill_id = 10002"
    ) == [("CANCELLED", False)]
    assert warehouse.rows(
        "select reason, outcome, status from supermetrics.backfill_lookups order by poll_id"
    ) == [
        ("left", "incomplete", "CREATED"),
        ("recheck", "final", "CANCELLED"),
        ("recheck", "final", "CANCELLED"),
    ]


def test_a_cancel_with_a_run_in_flight_ends_with_that_run_counted(
    sim: Simulator, api: Api, warehouse: Warehouse
) -> None:
    backfill_id = api.create(add_transfer(sim, run_seconds=100), days_ago(10), days_ago(1))[
        "transfer_backfill_id"
    ]
    poll_at(sim, warehouse, 240)  # RUNNING, 1 run done at T+230, the 2nd started at T+240
    sim.clock.advance(10)
    api.patch(f"/teams/{TEAM}/backfills/{backfill_id}", {"status": "CANCELLED"})  # the 2nd run is in flight
    poll_at(sim, warehouse, 260)  # left the list; the lookup: CANCELLED with 1 run done
    poll_at(sim, warehouse, 400)  # the recheck: 2 runs done, the in-flight one counted
    poll_at(sim, warehouse, 500)  # unchanged: no more lookups
    poll_at(sim, warehouse, 600)
    done = backfill(warehouse, backfill_id)
    assert (done["status"], done["transfer_runs_completed"], done["end_time"]) == ("CANCELLED", 2, at(250))
    assert warehouse.rows("select poll_id, outcome from supermetrics.backfill_lookups order by poll_id") == [
        (2, "final"),
        (3, "final"),
        (4, "final"),
    ]


def test_a_lookup_that_finds_the_state_unchanged_still_saw_its_errors(
    sim: Simulator, api: Api, warehouse: Warehouse
) -> None:
    failing = add_transfer(sim, failure_rate=1.0, run_seconds=100)
    backfill_id = api.create(failing, days_ago(1), days_ago(1))["transfer_backfill_id"]
    poll_at(sim, warehouse, 240)  # one run done at T+220 (its error), FAILED at T+230
    quiet = add_transfer(sim)
    for n in range(100):  # 100 newer backfills push it off the capped list
        api.create(quiet, days_ago(n + 2), days_ago(n + 2))
    poll_at(sim, warehouse, 300)  # left the list; the lookup finds it FAILED, exactly as stored
    assert warehouse.rows("select outcome, status from supermetrics.backfill_lookups") == [
        ("incomplete", "FAILED")
    ]
    assert warehouse.count("backfill_versions") == 1 + 100  # no new version of it
    errors = warehouse.rows(
        "select first_seen_at, last_seen_at from analytics.backfill_errors where transfer_backfill_id = ?",
        backfill_id,
    )
    assert errors == [(at(240), at(300))]  # last seen by the lookup at T+300
    summary = warehouse.rows("select last_seen_at from analytics.error_summary")
    assert summary == [(at(300),)]


def test_contract_columns_exist(sim: Simulator, api: Api, warehouse: Warehouse) -> None:
    api.create(add_transfer(sim), days_ago(2), days_ago(1))
    warehouse.ingest()
    for table, columns in CONTRACT.items():
        have = {
            c
            for (c,) in warehouse.rows(
                "select column_name from information_schema.columns where table_schema = 'analytics' "
                "and table_name = ?",
                table,
            )
        }
        assert set(columns.split(", ")) <= have, (table, set(columns.split(", ")) - have)


# the analytics schema's contract (docs/analytics.md): table, then its minimum columns
CONTRACT_TEXT = """
polls: poll_id, team_id, polled_at, outcome, http_status, error_code, request_id, backfills_listed,
    possibly_truncated, duration_ms, rate_limit_remaining
backfill_progress: poll_id, polled_at, team_id, transfer_backfill_id, transfer_id, status,
    transfer_runs_total, transfer_runs_created, transfer_runs_completed, transfer_runs_failed,
    progress_pct, error_count
backfills: team_id, transfer_backfill_id, transfer_id, range_start_date, range_end_date, range_days, status,
    is_incomplete, created_time, created_user_id, start_time, end_time, removed_time, removed_user_id,
    first_seen_at, last_seen_at, vanished_at, finished_at, queue_seconds, run_seconds, transfer_runs_total,
    transfer_runs_created, transfer_runs_completed, transfer_runs_failed, progress_pct, failure_rate,
    error_count, runs_per_hour, eta, is_stalled
backfill_status_history: team_id, transfer_backfill_id, status, valid_from, valid_to, duration_seconds
backfill_errors: team_id, transfer_backfill_id, transfer_id, transfer_run_date, error, first_seen_at,
    last_seen_at
transfer_failure_rates: team_id, transfer_id, backfills, backfills_incomplete, backfills_completed,
    backfills_cancelled, runs_completed, runs_failed, failure_rate, median_run_seconds, p95_run_seconds,
    last_error, last_backfill_created_at
error_summary: error_pattern, occurrences, backfills, transfers, first_seen_at, last_seen_at, example_error
daily_activity: day, team_id, backfills_created, backfills_started, backfills_finished, backfills_active,
    runs_completed, runs_failed
"""
CONTRACT = {
    table: " ".join(columns.split())
    for table, columns in (
        entry.split(":") for entry in CONTRACT_TEXT.replace("\n    ", " ").strip().splitlines()
    )
}


def test_error_patterns_mask_ids_numbers_dates_and_quoted_values(
    sim: Simulator, api: Api, warehouse: Warehouse
) -> None:
    backfill_id = api.create(add_transfer(sim, failure_rate=1.0), days_ago(4), days_ago(1))[
        "transfer_backfill_id"
    ]
    sim.clock.advance(130 + 4 * 110)
    sim.world.sync()
    messages = [
        "Account 123-456-7890 not found",
        "Account 987-654-3210 not found",
        "Reconnect login 'a@example.com' by 2025-01-02",
        "request req_59ab12cd failed after 30 s",
    ]
    for entry, message in zip(sim.world.get(TEAM, backfill_id).errors, messages, strict=True):
        entry["error"] = message
    warehouse.ingest()
    assert warehouse.rows(
        "select error_pattern, occurrences, backfills from analytics.error_summary order by 1"
    ) == [
        ("Account <id> not found", 2, 1),
        ("Reconnect login <value> by <date>", 1, 1),
        ("request <id> failed after <n> s", 1, 1),
    ]

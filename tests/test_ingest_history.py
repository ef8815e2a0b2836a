"""Ingest over real HTTP into a real DuckDB file: change-only history, listing events, lookups.

Times come from conftest.FIXED_TIMING: a lone backfill of n runs of 100 s created at T is
SCHEDULED at T+60, RUNNING at T+120, has k runs done at T+120+110k, and finishes at T+130+110n.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta

import pytest
from conftest import START, TEAM, Api, Warehouse, add_transfer, days_ago, poll_requests
from history import as_listed, reconstruct

from pipelines.simulator import Simulator
from pipelines.supermetrics.errors import ApiUnavailableError, InvalidResponseError


class Recorder:
    """Ingests and, at the same simulated instant, records what the API listed, to compare later."""

    def __init__(self, warehouse: Warehouse, api: Api) -> None:
        self.warehouse, self.api = warehouse, api
        self.listings: dict[int, list[dict]] = {}

    def poll(self) -> int:
        """Ingest; returns the requests of the list and its lookups."""
        result = self.warehouse.ingest()
        [team] = result.report.teams
        self.listings[team.poll_id] = as_listed(self.api.listing())
        return poll_requests(result)

    def assert_every_poll_reconstructs(self) -> None:
        for poll_id, listing in self.listings.items():
            assert reconstruct(self.warehouse, TEAM, poll_id) == listing, f"poll {poll_id}"


@pytest.fixture(autouse=True)
def raw_tables_only(warehouse: Warehouse) -> None:
    warehouse.build_models = False  # these tests read the raw tables: no model build per poll


@pytest.fixture
def recorder(warehouse: Warehouse, api: Api) -> Recorder:
    return Recorder(warehouse, api)


def versions(warehouse: Warehouse) -> list[tuple]:
    return warehouse.rows(
        "select poll_id, source, status, transfer_runs_completed "
        "from supermetrics.backfill_versions order by poll_id"
    )


def test_lifecycle_to_completed(sim: Simulator, api: Api, warehouse: Warehouse, recorder: Recorder) -> None:
    created = api.create(add_transfer(sim, run_seconds=100), days_ago(3), days_ago(1))
    backfill_id = created["transfer_backfill_id"]
    requests = []
    for advance in (0, 0, 60, 60, 110, 70, 160, 140):  # T+0, 0, 60, 120, 230, 300, 460, 600
        sim.clock.advance(advance)
        requests.append(recorder.poll())

    assert versions(warehouse) == [
        (1, "list", "CREATED", 0),  # poll 2 saw the same state: nothing stored
        (3, "list", "SCHEDULED", 0),
        (4, "list", "RUNNING", 0),
        (5, "list", "RUNNING", 1),  # poll 6 at T+300: still one run done
        (7, "lookup", "COMPLETED", 3),
    ]
    assert warehouse.rows("select poll_id, event from supermetrics.listing_events order by poll_id") == [
        (1, "listed"),
        (7, "unlisted"),
    ]
    [lookup] = warehouse.rows(
        "select poll_id, outcome, status, http_status from supermetrics.backfill_lookups"
    )
    assert lookup == (7, "final", "COMPLETED", 200)
    [(end_time, start_time)] = warehouse.rows(
        "select end_time, start_time from supermetrics.backfill_versions where source = 'lookup'"
    )
    assert (end_time - START).total_seconds() == 460 and (start_time - START).total_seconds() == 120
    assert requests == [1, 1, 1, 1, 1, 1, 2, 1]  # a list call per run, plus one lookup when it left
    polls = warehouse.rows(
        "select poll_id, outcome, backfills_listed, backfills_left from supermetrics.polls order by poll_id"
    )
    assert polls == [
        (1, "ok", 1, 0),
        (2, "ok", 1, 0),
        (3, "ok", 1, 0),
        (4, "ok", 1, 0),
        (5, "ok", 1, 0),
        (6, "ok", 1, 0),
        (7, "ok", 0, 1),
        (8, "ok", 0, 0),
    ]
    assert warehouse.rows("select distinct transfer_backfill_id from supermetrics.backfill_versions") == [
        (backfill_id,)
    ]
    recorder.assert_every_poll_reconstructs()


def test_cancelled_backfill_gets_its_final_state(
    sim: Simulator, api: Api, warehouse: Warehouse, recorder: Recorder
) -> None:
    created = api.create(add_transfer(sim), days_ago(10), days_ago(1))
    sim.clock.advance(300)
    recorder.poll()
    api.patch(f"/teams/{TEAM}/backfills/{created['transfer_backfill_id']}", {"status": "CANCELLED"})
    sim.clock.advance(60)
    recorder.poll()
    [final] = warehouse.rows(
        "select status, end_time, removed_time, removed_user_id from supermetrics.backfill_versions "
        "where source = 'lookup'"
    )
    assert final[0] == "CANCELLED" and final[1] == final[2] and final[3] == 789
    assert (final[1] - START).total_seconds() == 300
    recorder.assert_every_poll_reconstructs()


def test_failed_backfill_retried_then_completed(
    sim: Simulator, api: Api, warehouse: Warehouse, recorder: Recorder
) -> None:
    transfer = add_transfer(sim, failure_rate=1.0)
    created = api.create(transfer, days_ago(2), days_ago(1))
    sim.clock.advance(130 + 2 * 110)  # FAILED with two errors
    recorder.poll()
    recorder.poll()  # unchanged: FAILED stays listed, nothing stored
    sim.world.teams[TEAM].transfers[transfer].failure_rate = 0.0
    sim.world.retry(TEAM, created["transfer_backfill_id"])
    recorder.poll()  # RUNNING again, error report reset
    sim.clock.advance(10 + 2 * 110 + 10)
    recorder.poll()  # COMPLETED: left the list
    assert versions(warehouse) == [
        (1, "list", "FAILED", 0),
        (3, "list", "RUNNING", 0),
        (4, "lookup", "COMPLETED", 2),
    ]
    assert warehouse.rows(
        "select error_count, error_report_poll_id from supermetrics.backfill_versions order by poll_id"
    ) == [(2, 1), (0, 3), (0, 3)]
    assert warehouse.count("backfill_versions__error_report") == 2  # stored once, with the FAILED version
    recorder.assert_every_poll_reconstructs()


def test_empty_list_is_a_real_answer(
    sim: Simulator, api: Api, warehouse: Warehouse, recorder: Recorder
) -> None:
    ids = [api.create(add_transfer(sim), days_ago(5), days_ago(1))["transfer_backfill_id"] for _ in range(2)]
    recorder.poll()
    for backfill_id in ids:
        api.patch(f"/teams/{TEAM}/backfills/{backfill_id}", {"status": "CANCELLED"})
    assert recorder.poll() == 3  # the list, then each backfill that left it
    assert api.listing() == []
    assert warehouse.rows(
        "select event, count(*) from supermetrics.listing_events group by all order by 1"
    ) == [("listed", 2), ("unlisted", 2)]
    assert warehouse.rows("select outcome, status from supermetrics.backfill_lookups") == [
        ("final", "CANCELLED"),
        ("final", "CANCELLED"),
    ]
    assert recorder.poll() == 3  # each CANCELLED one once more: a run in flight could still finish
    assert recorder.poll() == 1  # their counters did not move: nothing left to look up
    assert warehouse.rows(
        "select reason, count(*) from supermetrics.backfill_lookups group by 1 order by 1"
    ) == [
        ("left", 2),
        ("recheck", 2),
    ]
    recorder.assert_every_poll_reconstructs()


def push_three_off_a_full_list(sim: Simulator, api: Api, poll: Callable[[], object]) -> list[int]:
    """100 backfills, listed by `poll()`; then three newer ones push the three oldest off the
    capped list. Returns those three."""
    transfer = add_transfer(sim)
    for n in range(100):
        api.create(transfer, days_ago(n + 1), days_ago(n + 1))
        sim.clock.advance(1)
    poll()
    oldest_three = sorted(b["transfer_backfill_id"] for b in api.listing())[:3]
    for n in range(100, 103):
        api.create(transfer, days_ago(n + 1), days_ago(n + 1))
    return oldest_three


def test_list_capped_at_100_keeps_the_rest_incomplete(
    sim: Simulator, api: Api, warehouse: Warehouse, recorder: Recorder
) -> None:
    oldest_three = push_three_off_a_full_list(sim, api, recorder.poll)
    assert recorder.poll() == 4
    lookups = warehouse.rows(
        "select transfer_backfill_id, outcome from supermetrics.backfill_lookups order by 1"
    )
    assert [b for b, _ in lookups] == oldest_three and {o for _, o in lookups} == {"incomplete"}
    assert warehouse.rows("select possibly_truncated from supermetrics.polls order by poll_id") == [
        (True,),
        (True,),
    ]
    assert recorder.poll() == 4  # still hidden by the cap: checked again until it is final
    assert (
        warehouse.rows("select reason from supermetrics.backfill_lookups where poll_id = 3")
        == [("recheck",)] * 3
    )
    for backfill_id in sorted(b["transfer_backfill_id"] for b in api.listing())[-3:]:
        sim.world.forget(TEAM, backfill_id)  # gone (404), which makes room on the list
    versions_before = warehouse.count("backfill_versions")
    assert recorder.poll() == 4  # the three gone are looked up; the three hidden ones are listed again
    assert warehouse.count("backfill_versions") == versions_before  # unchanged: they do not look new
    assert warehouse.rows("select count(*) from supermetrics.listing_events where event = 'listed'") == [
        (106,)
    ]
    recorder.assert_every_poll_reconstructs()


def test_rechecks_of_hidden_backfills_keep_to_a_budget_oldest_checked_first(
    sim: Simulator, api: Api, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__SUPERMETRICS__MAX_RECHECKS", "2")
    hidden = push_three_off_a_full_list(sim, api, warehouse.ingest)
    for _ in range(3):
        warehouse.ingest()
    checked = warehouse.rows(
        "select poll_id, transfer_backfill_id, reason from supermetrics.backfill_lookups order by poll_id, 2"
    )
    assert checked == [
        *[(2, b, "left") for b in hidden],  # leaving the list: always looked up, outside the budget
        (3, hidden[0], "recheck"),  # all three last checked at poll 2: the two lowest ids
        (3, hidden[1], "recheck"),
        (4, hidden[0], "recheck"),  # hidden[2] (poll 2) and hidden[0] (poll 3, lower id than [1])
        (4, hidden[2], "recheck"),
    ]


def test_lookup_404_is_recorded_as_not_found(
    sim: Simulator, api: Api, warehouse: Warehouse, recorder: Recorder
) -> None:
    created = api.create(add_transfer(sim), days_ago(2), days_ago(1))
    recorder.poll()
    sim.world.forget(TEAM, created["transfer_backfill_id"])
    assert recorder.poll() == 2
    assert warehouse.rows("select outcome, http_status, error_code from supermetrics.backfill_lookups") == [
        ("not_found", 404, "NOT_FOUND")
    ]
    assert recorder.poll() == 1


def test_transient_lookup_failure_is_retried_next_run(
    sim: Simulator, api: Api, warehouse: Warehouse, recorder: Recorder
) -> None:
    created = api.create(add_transfer(sim), days_ago(2), days_ago(1))
    recorder.poll()
    api.patch(f"/teams/{TEAM}/backfills/{created['transfer_backfill_id']}", {"status": "CANCELLED"})
    sim.faults.add(kind="503", endpoint="get", times=2)  # both attempts of the lookup fail
    result = warehouse.ingest()
    assert result.report.teams[0].lookups_failed == 1
    assert any("will retry on the next run" in w for w in result.report.warnings)
    assert warehouse.rows("select outcome, http_status from supermetrics.backfill_lookups") == [
        ("failed", 503)
    ]
    assert poll_requests(warehouse.ingest()) == 2  # the list, and the lookup again
    assert warehouse.rows(
        "select reason, outcome, status from supermetrics.backfill_lookups order by poll_id"
    ) == [("left", "failed", None), ("retry", "final", "CANCELLED")]
    assert poll_requests(warehouse.ingest()) == 2  # CANCELLED: once more, in case a run was in flight
    assert poll_requests(warehouse.ingest()) == 1  # unchanged: done


def test_unknown_fields_and_status_are_kept_with_warnings(
    sim: Simulator, api: Api, warehouse: Warehouse
) -> None:
    api.create(add_transfer(sim), days_ago(2), days_ago(1))
    sim.faults.add(kind="extra_field", endpoint="list", times=1)
    result = warehouse.ingest()
    assert any("unknown fields labels, priority" in w for w in result.report.warnings)
    [(extra,)] = warehouse.rows("select extra_fields from supermetrics.backfill_versions")
    assert json.loads(extra) == {"labels": ["simulated"], "priority": "NORMAL"}

    sim.faults.add(kind="unknown_status", endpoint="list", times=1)
    result = warehouse.ingest()
    assert any("unknown status 'PAUSED'" in w for w in result.report.warnings)
    assert warehouse.rows("select status from supermetrics.backfill_versions order by poll_id") == [
        ("CREATED",),
        ("PAUSED",),
    ]
    assert warehouse.rows("select event from supermetrics.listing_events") == [
        ("listed",)
    ]  # never disappeared
    warehouse.ingest()  # back to normal: the known status is a change again
    assert warehouse.rows("select status from supermetrics.backfill_versions order by poll_id")[-1] == (
        "CREATED",
    )


def test_failed_poll_is_logged_and_never_read_as_empty(
    sim: Simulator, api: Api, warehouse: Warehouse
) -> None:
    api.create(add_transfer(sim), days_ago(2), days_ago(1))
    warehouse.ingest()
    sim.faults.add(kind="503", endpoint="list", times=2)
    with pytest.raises(ApiUnavailableError, match="HTTP 503 SERVICE_UNAVAILABLE"):
        warehouse.ingest()
    failed = warehouse.rows(
        "select outcome, http_status, error_code, error_class, backfills_listed, request_id "
        "from supermetrics.polls where poll_id = 2"
    )
    assert failed[0][:5] == ("failed", 503, "SERVICE_UNAVAILABLE", "API unavailable", None)
    assert len(failed[0][5]) == 32  # the API's request id is kept
    warehouse.ingest()
    assert warehouse.rows("select event from supermetrics.listing_events") == [("listed",)]
    assert warehouse.count("backfill_lookups") == 0


def test_invalid_body_fails_the_poll_and_loads_nothing_from_it(
    sim: Simulator, api: Api, warehouse: Warehouse
) -> None:
    api.create(add_transfer(sim), days_ago(2), days_ago(1))
    sim.faults.add(kind="missing_field", endpoint="list", times=1, field="transfer_runs_total")
    with pytest.raises(InvalidResponseError, match=r"data\[0\] lacks the required field transfer_runs_total"):
        warehouse.ingest()
    assert warehouse.rows("select outcome, error_class from supermetrics.polls") == [
        ("failed", "invalid response")
    ]
    assert warehouse.count("backfill_versions") == 0 and warehouse.count("listing_events") == 0


@pytest.mark.parametrize("kind", ["missing_field", "html", "bad_json"])
@pytest.mark.parametrize("endpoint", ["list", "get"])
def test_an_invalid_200_keeps_the_servers_time_and_status(
    sim: Simulator, api: Api, warehouse: Warehouse, kind: str, endpoint: str
) -> None:
    """The answer came, with a Date header: the log says when by the API's clock, and that it was a 200."""
    backfill_id = api.create(add_transfer(sim), days_ago(2), days_ago(1))["transfer_backfill_id"]
    warehouse.ingest()
    sim.clock.advance(300)
    if endpoint == "get":  # the backfill leaves the list; its lookup gets the broken answer
        sim.world.cancel(TEAM, backfill_id, 789)
    sim.faults.add(kind=kind, endpoint=endpoint, times=2)
    if endpoint == "list":
        with pytest.raises(InvalidResponseError):
            warehouse.ingest()
    else:
        warehouse.ingest()  # a failed lookup is a warning, tried again next run
    expected = ("failed", 200, START + timedelta(seconds=300))  # the simulator's clock, not this machine's
    if endpoint == "list":
        row = warehouse.rows(
            "select outcome, http_status, polled_at from supermetrics.polls where poll_id = 2"
        )
    else:
        row = warehouse.rows("select outcome, http_status, looked_up_at from supermetrics.backfill_lookups")
    assert row == [expected]


def test_several_teams_in_one_run(sim: Simulator, api: Api, warehouse: Warehouse) -> None:
    from conftest import OTHER_TEAM

    api.create(add_transfer(sim), days_ago(2), days_ago(1))
    api.create(add_transfer(sim, team=OTHER_TEAM), days_ago(2), days_ago(1), team=OTHER_TEAM)
    warehouse.team_ids = [TEAM, OTHER_TEAM]
    result = warehouse.ingest()
    assert [(t.team_id, t.poll_id, t.listed) for t in result.report.teams] == [
        (TEAM, 1, 1),
        (OTHER_TEAM, 2, 1),
    ]
    assert warehouse.rows(
        "select team_id, count(*) from supermetrics.backfill_versions group by 1 order by 1"
    ) == [(OTHER_TEAM, 1), (TEAM, 1)]


def test_data_a_killed_run_left_pending_loads_first_without_duplicates(
    sim: Simulator, api: Api, warehouse: Warehouse
) -> None:

    from pipelines.engines import Warehouse as Target
    from pipelines.ingest import open_pipeline
    from pipelines.supermetrics import supermetrics
    from pipelines.supermetrics.baseline import read_baseline

    api.create(add_transfer(sim), days_ago(2), days_ago(1))
    warehouse.ingest()
    sim.clock.advance(60)  # SCHEDULED: a change
    # what a run killed after extracting and normalizing, before loading, leaves behind
    with Target("duckdb", warehouse.db_path).connect() as con:
        baseline = read_baseline(con, "supermetrics")
    pipeline = open_pipeline(warehouse.db_path)
    pipeline.extract(supermetrics(team_ids=[TEAM], base_url=sim.base_url, baseline=baseline))
    pipeline.normalize()
    assert pipeline.has_pending_data

    result = warehouse.ingest()
    assert [(t.poll_id, t.changed) for t in result.report.teams] == [(3, 0)]  # poll 2 loaded first
    assert versions(warehouse) == [(1, "list", "CREATED", 0), (2, "list", "SCHEDULED", 0)]
    assert warehouse.rows("select poll_id from supermetrics.polls order by 1") == [(1,), (2,), (3,)]
    assert not open_pipeline(warehouse.db_path).has_pending_data

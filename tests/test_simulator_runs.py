"""The simulator's transfers and transfer-runs endpoints: what the description documents, with
times worked out by hand from FIXED_TIMING (see conftest).

A lone backfill of 3 days (2026-01-02 .. 2026-01-04) on a transfer whose runs take 100 s, created
at START (2026-01-05 08:00:00): its runs are created 130 s, 240 s and 350 s after START (newest day
first) and each ends 100 s later. Transfer 456001 makes its Recurring run at 01:00 UTC
(456001 % 24 = 1) for the day before.
"""

from __future__ import annotations

import pytest
from conftest import OTHER_TEAM, TEAM, Api, add_transfer, days_ago
from openapi_contract import validate, validate_error_envelope, validate_request

from pipelines.simulator import Simulator

# the window's parameters are date-times in the description (its examples show dates, which the
# simulator takes too, as whole UTC days)
DAY = {"start_date": "2026-01-05T00:00:00Z", "end_date": "2026-01-05T23:59:59Z"}


def runs(api: Api, transfer: int, **params: str) -> list[dict]:
    response = api.get(f"/teams/{TEAM}/transfers/{transfer}/runs", params={**DAY, **params})
    if "-" not in params.get("start_date", "T")[-3:] and "T" in params.get("end_date", "T"):
        validate_request(response.request)
    validate(response)
    return response.json()["data"]


@pytest.fixture
def three_day_backfill(sim: Simulator, api: Api) -> tuple[int, int]:
    transfer = add_transfer(sim, run_seconds=100)
    backfill = api.create(transfer, days_ago(3), days_ago(1))["transfer_backfill_id"]
    sim.clock.advance(600)  # the backfill ended at +460 s
    return transfer, backfill


def test_a_backfill_makes_one_run_a_day_with_its_true_times(
    sim: Simulator, api: Api, three_day_backfill: tuple[int, int]
) -> None:
    transfer, _ = three_day_backfill
    assert [
        (r["type"], r["data_date"], r["status"], r["created_time"], r["ended_time"], r["total_duration"])
        for r in runs(api, transfer, sort_direction="ASC")
    ] == [
        ("Backfill", "2026-01-04", "COMPLETED", "2026-01-05T08:02:10Z", "2026-01-05T08:03:50Z", 100.0),
        ("Backfill", "2026-01-03", "COMPLETED", "2026-01-05T08:04:00Z", "2026-01-05T08:05:40Z", 100.0),
        ("Backfill", "2026-01-02", "COMPLETED", "2026-01-05T08:05:50Z", "2026-01-05T08:07:30Z", 100.0),
    ]
    first = runs(api, transfer, sort_direction="ASC")[0]
    detail = api.get(f"/teams/{TEAM}/transfer_runs/{first['id']}")
    validate(detail)
    data = detail.json()["data"]
    assert (data["started_time"], data["total_rows"]) == ("2026-01-05T08:02:10Z", first["total_rows"])
    assert sum(q["rows"] for q in data["query_details"]) == first["total_rows"]
    assert data["failed_query_amount"] == 0

    sim.clock.advance(18 * 3600)  # past 01:00 on 2026-01-06: the daily run for 2026-01-05
    recurring = runs(api, transfer, start_date="2026-01-06T00:00:00Z", end_date="2026-01-06T23:59:59Z")
    assert [(r["type"], r["data_date"], r["created_time"]) for r in recurring] == [
        ("Recurring", "2026-01-05", "2026-01-06T01:00:00Z")
    ]


def test_a_retry_runs_the_failed_days_again_as_new_runs(sim: Simulator, api: Api) -> None:
    transfer = add_transfer(sim, failure_rate=1.0, run_seconds=100)
    backfill = api.create(transfer, days_ago(2), days_ago(1))["transfer_backfill_id"]
    sim.clock.advance(400)  # both days failed at +230 s and +340 s; FAILED at +350 s
    assert api.backfill(backfill)["status"] == "FAILED"
    sim.world.retry(TEAM, backfill)
    sim.clock.advance(400)
    found = runs(api, transfer, sort_direction="ASC")
    assert [(r["data_date"], r["status"]) for r in found] == [
        ("2026-01-04", "FAILED"),
        ("2026-01-03", "FAILED"),
        ("2026-01-04", "FAILED"),
        ("2026-01-03", "FAILED"),
    ]
    assert len({r["id"] for r in found}) == 4
    assert all(r["message"] for r in found)
    assert len(runs(api, transfer, filter_issues_only="true")) == 4


def test_pages_sorting_and_the_date_window(
    sim: Simulator, api: Api, three_day_backfill: tuple[int, int]
) -> None:
    transfer, _ = three_day_backfill
    newest_first = [r["id"] for r in runs(api, transfer)]  # default: created_time, DESC
    assert newest_first == sorted(newest_first, reverse=True) and len(newest_first) == 3
    assert [r["id"] for r in runs(api, transfer, limit="2")] == newest_first[:2]
    assert [r["id"] for r in runs(api, transfer, limit="2", offset="2")] == newest_first[2:]  # last, partial
    assert runs(api, transfer, limit="2", offset="4") == []  # past the end: an empty page
    by_day = [r["data_date"] for r in runs(api, transfer, sort_field="data_date", sort_direction="ASC")]
    assert by_day == ["2026-01-02", "2026-01-03", "2026-01-04"]
    assert len(runs(api, transfer, end_date="2026-01-05")) == 3  # a date end is inclusive: the whole day
    assert runs(api, transfer, end_date="2026-01-05T08:04:00Z") != []
    assert len(runs(api, transfer, start_date="2026-01-05T08:04:00Z", end_date="2026-01-05T08:04:00Z")) == 1
    assert runs(api, transfer, start_date="2026-01-06", end_date="2026-01-06") == []
    assert runs(api, transfer, filter_issues_only="true") == []
    assert len(runs(api, transfer, limit="10000")) == 3  # the documented maximum


def test_bad_parameters_and_unknown_ids_are_refused(
    sim: Simulator, api: Api, three_day_backfill: tuple[int, int]
) -> None:
    transfer, _ = three_day_backfill
    path = f"/teams/{TEAM}/transfers/{transfer}/runs"
    for params, named in (
        ({**DAY, "limit": "10001"}, "limit must be at most 10000"),  # refused, not capped
        ({**DAY, "limit": "0"}, "limit must be at least 1"),
        ({**DAY, "offset": "-1"}, "offset must be at least 0"),
        ({"end_date": "2026-01-05"}, "start_date is required"),
        ({**DAY, "sort_field": "id"}, "sort_field must be one of"),
        ({**DAY, "sort_direction": "up"}, "sort_direction must be ASC or DESC"),
        ({**DAY, "start_date": "yesterday"}, "start_date is not a date"),
    ):
        answer = api.get(path, params=params)
        assert answer.status_code == 400, params
        validate_error_envelope(answer.json())
        assert named in answer.json()["error"]["description"]
    for path, status in (
        (f"/teams/{TEAM}/transfers/999", 404),
        (f"/teams/{TEAM}/transfer_runs/999", 404),
        (f"/teams/{OTHER_TEAM}/transfer_runs/7000001", 404),  # another team's run
        ("/teams/555/transfers", 403),
    ):
        answer = api.get(path)
        assert answer.status_code == status, path
        validate(answer)


def test_transfers_list_and_one_transfer(sim: Simulator, api: Api) -> None:
    first, second = add_transfer(sim), add_transfer(sim)
    listed = api.get(f"/teams/{TEAM}/transfers")
    validate(listed)
    assert [t["dwh_transfer_id"] for t in listed.json()["data"]] == [first, second]
    sim.world.rename_transfer(TEAM, first, "Google Ads: brand campaigns")
    one = api.get(f"/teams/{TEAM}/transfers/{first}")
    validate(one)
    assert one.json()["data"]["display_name"] == "Google Ads: brand campaigns"
    other = api.get(f"/teams/{OTHER_TEAM}/transfers")
    assert other.status_code == 200 and other.json()["data"] == []

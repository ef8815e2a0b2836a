"""Body validation: what fails a poll, what is kept with a warning."""

from __future__ import annotations

import pytest

from pipelines.supermetrics.errors import InvalidResponseError
from pipelines.supermetrics.validation import parse_backfill, parse_listing

GOOD = {
    "transfer_backfill_id": 12345,
    "transfer_id": 456789,
    "range_start_date": "2024-01-01",
    "range_end_date": "2024-01-31",
    "created_time": "2024-02-01T09:00:00Z",
    "created_user_id": 789,
    "start_time": "2024-02-01T10:00:00Z",
    "end_time": None,
    "status": "RUNNING",
    "transfer_runs_total": 31,
    "transfer_runs_created": 31,
    "transfer_runs_completed": 25,
    "transfer_runs_failed": 2,
    "error_report": [
        {"transfer_run_date": "2024-01-15", "error": "b"},
        {"transfer_run_date": "2024-01-02", "error": "a"},
    ],
}


def test_good_backfill_is_typed_and_its_report_sorted() -> None:
    record = parse_backfill(GOOD, "x")
    assert record.fields["created_time"].isoformat() == "2024-02-01T09:00:00+00:00"
    assert record.fields["range_start_date"].isoformat() == "2024-01-01"
    assert [str(e["transfer_run_date"]) for e in record.error_report] == ["2024-01-02", "2024-01-15"]
    assert record.fields["removed_time"] is None and record.warnings == []


def test_error_report_order_does_not_change_the_hash() -> None:
    shuffled = {**GOOD, "error_report": list(reversed(GOOD["error_report"]))}
    assert parse_backfill(shuffled, "x").state_hash == parse_backfill(GOOD, "x").state_hash
    changed = {**GOOD, "transfer_runs_completed": 26}
    assert parse_backfill(changed, "x").state_hash != parse_backfill(GOOD, "x").state_hash
    assert parse_backfill(changed, "x").error_report_hash == parse_backfill(GOOD, "x").error_report_hash


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"transfer_backfill_id": None}, "transfer_backfill_id is None, expected an integer"),
        ({"transfer_backfill_id": True}, "expected an integer"),
        ({"transfer_runs_total": -1}, "expected a non-negative integer"),
        ({"transfer_runs_total": "31"}, "expected an integer"),
        ({"created_time": "2024-02-01T09:00:00"}, "expected a timestamp with a time zone"),
        ({"created_time": "yesterday"}, "expected an ISO 8601 timestamp"),
        ({"range_start_date": "2024-13-01"}, "expected a date"),
        ({"status": ""}, "expected a non-empty string"),
        ({"end_time": 5}, "end_time is 5"),
        ({"error_report": {}}, "error_report is not a list"),
        ({"error_report": [{"error": "x"}]}, "error_report[0] is not {transfer_run_date, error}"),
        ({"error_report": [{"transfer_run_date": "2024-01-01", "error": 3}]}, "error is 3"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_bad_fields_fail(change: dict, message: str) -> None:
    with pytest.raises(InvalidResponseError, match=None) as failed:
        parse_backfill({**GOOD, **change}, "data[0]")
    assert message in str(failed.value) and str(failed.value).startswith("data[0]")


def test_missing_required_field_fails() -> None:
    item = {k: v for k, v in GOOD.items() if k != "created_user_id"}
    with pytest.raises(InvalidResponseError, match="lacks the required field created_user_id"):
        parse_backfill(item, "data[0]")


def test_unknown_field_and_status_are_warnings() -> None:
    record = parse_backfill({**GOOD, "status": "PAUSED", "priority": "HIGH"}, "data[0]")
    assert record.status == "PAUSED" and record.extra_fields == {"priority": "HIGH"}
    assert len(record.warnings) == 2


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "the body is not a JSON object"),
        ({"meta": {}}, "the body has no data field"),
        ({"data": {}}, "data is not a list"),
        ({"data": [GOOD, GOOD]}, "listed twice"),
        ({"data": ["x"]}, "data[0] is not a JSON object"),
    ],
)
def test_bad_listings_fail(body: object, message: str) -> None:
    with pytest.raises(InvalidResponseError) as failed:
        parse_listing(body, "listing")
    assert message in str(failed.value)

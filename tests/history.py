"""Rebuild any poll's listing from the raw tables, independently of the SQL models.

This is the test suite's statement of what "every poll's listing can be reconstructed exactly"
means: the backfills whose latest listing event up to the poll is `listed`, each in the state of
its latest version up to the poll, with the error report its `error_report_poll_id` points to.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime

from conftest import Warehouse

API_FIELDS = (
    "transfer_backfill_id",
    "transfer_id",
    "range_start_date",
    "range_end_date",
    "created_time",
    "created_user_id",
    "start_time",
    "end_time",
    "status",
    "transfer_runs_total",
    "transfer_runs_created",
    "transfer_runs_completed",
    "transfer_runs_failed",
    "removed_time",
    "removed_user_id",
)


def _api_value(value: object) -> object:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    return value


def reconstruct(warehouse: Warehouse, team_id: int, poll_id: int) -> list[dict]:
    events = warehouse.rows(
        "select transfer_backfill_id, event from supermetrics.listing_events "
        "where team_id = ? and poll_id <= ? order by poll_id",
        team_id,
        poll_id,
    )
    latest_event: dict[int, str] = {}
    for backfill_id, event in events:
        latest_event[backfill_id] = event
    listed = [b for b, e in latest_event.items() if e == "listed"]
    columns = ", ".join(API_FIELDS)
    versions = warehouse.rows(
        f"select {columns}, poll_id, error_report_poll_id, _dlt_id from supermetrics.backfill_versions "
        "where team_id = ? and poll_id <= ? order by poll_id",
        team_id,
        poll_id,
    )
    latest: dict[int, tuple] = {}
    by_poll: dict[tuple[int, int], str] = {}
    for row in versions:
        latest[row[0]] = row
        by_poll[row[0], row[-3]] = row[-1]
    errors = defaultdict(list)
    if "backfill_versions__error_report" in {
        t
        for (t,) in warehouse.rows(
            "select table_name from information_schema.tables where table_schema = 'supermetrics'"
        )
    }:
        for parent, run_date, error in warehouse.rows(
            "select _dlt_parent_id, transfer_run_date, error "
            "from supermetrics.backfill_versions__error_report"
        ):
            errors[parent].append({"transfer_run_date": run_date.isoformat(), "error": error})
    result = []
    for backfill_id in listed:
        row = latest[backfill_id]
        item = {name: _api_value(value) for name, value in zip(API_FIELDS, row, strict=False)}
        if item["removed_time"] is None:
            del item["removed_time"], item["removed_user_id"]
        report_parent = by_poll[backfill_id, row[-2]]
        item["error_report"] = sorted(
            errors[report_parent], key=lambda e: (e["transfer_run_date"], e["error"])
        )
        result.append(item)
    return sorted(result, key=lambda b: (b["created_time"], b["transfer_backfill_id"]), reverse=True)


def as_listed(api_listing: list[dict]) -> list[dict]:
    """An API listing, error reports sorted (their order carries no meaning)."""
    return [
        {**b, "error_report": sorted(b["error_report"], key=lambda e: (e["transfer_run_date"], e["error"]))}
        for b in api_listing
    ]

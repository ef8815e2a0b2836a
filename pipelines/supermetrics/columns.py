"""Column hints of the raw tables: every API field is declared, so that a column exists even
when all its values so far are null (dlt creates no column it cannot type)."""

from __future__ import annotations

from typing import Any


def _columns(**types: str) -> list[dict[str, Any]]:
    """Column hints for every field, so that columns exist even when all their values are null."""
    return [{"name": name, "data_type": data_type, "nullable": True} for name, data_type in types.items()]


POLL_COLUMNS = _columns(
    poll_id="bigint",
    team_id="bigint",
    polled_at="timestamp",
    received_at="timestamp",
    outcome="text",
    http_status="bigint",
    error_code="text",
    error_class="text",
    error_message="text",
    api_message="text",
    request_id="text",
    backfills_listed="bigint",
    possibly_truncated="bool",
    backfills_left="bigint",
    duration_ms="double",
    rate_limit_remaining="bigint",
)
BACKFILL_COLUMNS = _columns(
    transfer_backfill_id="bigint",
    transfer_id="bigint",
    range_start_date="date",
    range_end_date="date",
    status="text",
    created_time="timestamp",
    created_user_id="bigint",
    start_time="timestamp",
    end_time="timestamp",
    removed_time="timestamp",
    removed_user_id="bigint",
    transfer_runs_total="bigint",
    transfer_runs_created="bigint",
    transfer_runs_completed="bigint",
    transfer_runs_failed="bigint",
)
VERSION_COLUMNS = (
    _columns(
        poll_id="bigint",
        team_id="bigint",
        observed_at="timestamp",
        source="text",
    )
    + BACKFILL_COLUMNS
    + _columns(
        error_count="bigint",
        state_hash="text",
        error_report_hash="text",
        error_report_poll_id="bigint",
        extra_fields="text",
    )
)
# `_dlt_load_id`: its version's, copied by dlt (source.py); nullable, as dlt adds it to a table whose
# rows from before have none (a NOT NULL column cannot be added there)
ERROR_REPORT_COLUMNS = _columns(transfer_run_date="date", error="text", _dlt_load_id="text")
EVENT_COLUMNS = _columns(
    poll_id="bigint",
    team_id="bigint",
    transfer_backfill_id="bigint",
    event="text",
    observed_at="timestamp",
)
LOOKUP_COLUMNS = _columns(
    poll_id="bigint",
    team_id="bigint",
    transfer_backfill_id="bigint",
    reason="text",
    looked_up_at="timestamp",
    outcome="text",
    status="text",
    http_status="bigint",
    error_code="text",
    error_message="text",
    api_message="text",
    request_id="text",
    duration_ms="double",
)
TRANSFER_COLUMNS = _columns(
    poll_id="bigint",
    team_id="bigint",
    transfer_id="bigint",
    observed_at="timestamp",
    display_name="text",
    data_source="text",
    status="text",
    state="text",
    schedule="text",
    state_hash="text",
)
RUN_COLUMNS = _columns(
    poll_id="bigint",
    team_id="bigint",
    transfer_id="bigint",
    run_id="bigint",
    observed_at="timestamp",
    type="text",
    status="text",
    data_date="date",
    created_time="timestamp",
    ended_time="timestamp",
    total_duration="double",
    total_rows="bigint",
    message="text",
    state_hash="text",
)
SWEEP_COLUMNS = _columns(
    poll_id="bigint",
    team_id="bigint",
    kind="text",
    transfer_id="bigint",
    swept_at="timestamp",
    window_start="timestamp",
    outcome="text",
    requests="bigint",
    found="bigint",
    error_message="text",
)

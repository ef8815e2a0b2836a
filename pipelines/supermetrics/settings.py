"""Endpoints, defaults and the names of the raw tables."""

from __future__ import annotations

from pathlib import Path

DEFAULT_BASE_URL = "https://dts-api.supermetrics.com/v1"
LIST_PATH = "/teams/{team_id}/backfills"
GET_PATH = "/teams/{team_id}/backfills/{backfill_id}"
LATEST_PATH = "/teams/{team_id}/transfers/{transfer_id}/backfills/latest"
TRANSFERS_PATH = "/teams/{team_id}/transfers"
RUNS_PATH = "/teams/{team_id}/transfers/{transfer_id}/runs"

INCOMPLETE_STATUSES = ("CREATED", "SCHEDULED", "RUNNING", "FAILED")
FINAL_STATUSES = ("COMPLETED", "CANCELLED")
KNOWN_STATUSES = INCOMPLETE_STATUSES + FINAL_STATUSES
LIST_LIMIT = 100  # the list endpoint returns at most this many
MAX_RECHECKS_PER_RUN = 10  # per team: lookups of cap-hidden or just-cancelled backfills, oldest-checked first
CANCELLED_LOOKUPS = 36  # a CANCELLED backfill is looked up at most this often while a run may be in flight

# HTTP defaults; each can be set in [sources.supermetrics] or SOURCES__SUPERMETRICS__<NAME>
REQUEST_TIMEOUT_SECONDS = 30.0
MAX_ATTEMPTS = 5
BACKOFF_FACTOR_SECONDS = 1.0  # waits 1, 2, 4, 8 s between attempts
MAX_RETRY_AFTER_SECONDS = 60.0  # a 429 asking to wait longer stops the run instead
MAX_RUN_SECONDS = 120.0  # all of a run's API calls and waits together: well inside a 5-minute cron
MAX_CONCURRENT_TEAMS = 4  # teams polled at once; each team's lookups follow its own poll

# The sweep of transfers and their runs, after each team's poll and lookups (see sweep.py)
SWEEP = True  # off: only the backfill list and lookups, as before
MAX_SWEEP_REQUESTS = 10  # per team and run: transfers list, `latest` checks and runs pages together
TRANSFERS_REFRESH_HOURS = 24.0  # names change rarely; an unknown transfer id: hourly at most
LATEST_CHECKS_PER_RUN = 2  # per team: transfers asked for their latest backfill, oldest-checked first
RUNS_PAGE_SIZE = 1000  # the API's default is 100
RUNS_MAX_PAGE_SIZE = 10_000  # the API's documented maximum
RUNS_OVERLAP_SECONDS = 3600  # each runs window starts this long before the last one ended

# DuckDB's memory for a run's incremental work ([duckdb] memory_limit, DUCKDB__MEMORY_LIMIT): its
# default, 80% of the machine, would let the cache of a large history grow the process run after
# run. A full refresh of the models runs without it.
DUCKDB_MEMORY_LIMIT = "256MB"

# Where things live
DEFAULT_DB_PATH = Path("data/backfills.duckdb")
PIPELINE_NAME = "supermetrics_backfills"
DATASET_NAME = "supermetrics"  # the raw dlt dataset (a DuckDB schema)

# Raw tables
POLLS = "polls"
VERSIONS = "backfill_versions"  # + the dlt child table backfill_versions__error_report
LISTING_EVENTS = "listing_events"
LOOKUPS = "backfill_lookups"
TRANSFERS = "transfers"  # change-only versions of each transfer's name and source
RUNS = "transfer_runs"  # change-only versions of each run of type Backfill
SWEEPS = "api_sweeps"  # the log of every sweep request: transfers, latest, runs windows

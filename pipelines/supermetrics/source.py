"""dlt source for Supermetrics backfills: a poll log and change-only backfill history.

Config section `supermetrics`: `[sources.supermetrics]` in `.dlt/config.toml` / `.dlt/secrets.toml`,
or `SOURCES__SUPERMETRICS__<NAME>` env vars. Every table is append-only; change detection happens
against a `Baseline` read from the destination before the run (see `pipelines.ingest`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import dlt
from dlt.common.normalizers.json.relational import C_DLT_LOAD_ID, DataItemNormalizer
from dlt.sources import DltResource

from . import settings
from .client import SupermetricsClient, check_setting
from .columns import (
    ERROR_REPORT_COLUMNS,
    EVENT_COLUMNS,
    LOOKUP_COLUMNS,
    POLL_COLUMNS,
    RUN_COLUMNS,
    SWEEP_COLUMNS,
    TRANSFER_COLUMNS,
    VERSION_COLUMNS,
)
from .errors import ConfigError
from .snapshot import Baseline, Collector, RunReport
from .sweep import SweepSettings


def _team_ids(team_ids: list[int]) -> list[int]:
    """Positive, distinct team ids in the given order; anything else is a config error."""
    try:
        ids = list(dict.fromkeys(int(t) for t in team_ids))
    except (TypeError, ValueError):
        raise ConfigError(
            f"team_ids must be a list of team ids, such as [936506], not {team_ids!r}"
        ) from None
    if not ids or min(ids) < 1:
        raise ConfigError(f"team_ids must hold at least one positive team id, not {team_ids!r}")
    return ids


def _rows_or_schema(rows: list[dict[str, Any]], first_run: bool) -> Iterator[Any]:
    """The rows; on a first run with none, a marker that still creates the table. (Later runs
    skip empty tables: a load job per empty table would cost more than the poll.)"""
    if rows:
        yield from rows
    elif first_run:
        yield dlt.mark.materialize_table_schema()


def _reports_carry_their_load_id() -> None:
    """dlt stamps `_dlt_load_id` on root rows only. Copied onto each error report row from its
    version, it lets a run's exactly-once check (pipelines/settle.py) find a load's report rows
    by their load id, which DuckDB's zone maps skip to, instead of reading the parent id of every
    report row ever stored."""
    DataItemNormalizer.update_normalizer_config(
        dlt.current.source_schema(),
        {"propagation": {"tables": {settings.VERSIONS: {C_DLT_LOAD_ID: C_DLT_LOAD_ID}}}},
    )


@dlt.source(name="supermetrics", section="supermetrics", max_table_nesting=1)
def supermetrics(
    team_ids: list[int] = dlt.config.value,
    api_key: str = dlt.secrets.value,
    base_url: str = settings.DEFAULT_BASE_URL,
    request_timeout: float = settings.REQUEST_TIMEOUT_SECONDS,
    max_attempts: int = settings.MAX_ATTEMPTS,
    backoff_factor: float = settings.BACKOFF_FACTOR_SECONDS,
    max_retry_after: float = settings.MAX_RETRY_AFTER_SECONDS,
    max_rechecks: int = settings.MAX_RECHECKS_PER_RUN,
    max_concurrent_teams: int = settings.MAX_CONCURRENT_TEAMS,
    max_run_seconds: float = settings.MAX_RUN_SECONDS,
    sweep: bool = settings.SWEEP,
    max_sweep_requests: int = settings.MAX_SWEEP_REQUESTS,
    transfers_refresh_hours: float = settings.TRANSFERS_REFRESH_HOURS,
    latest_checks_per_run: int = settings.LATEST_CHECKS_PER_RUN,
    runs_page_size: int = settings.RUNS_PAGE_SIZE,
    baseline: Baseline | None = None,
    report: RunReport | None = None,
    rounds: int = 1,
    between_rounds: Callable[[], None] | None = None,
) -> list[DltResource]:
    """Poll each team's incomplete backfills once and emit what changed.

    Args:
        team_ids: Supermetrics team ids to poll.
        api_key: the API key (a secret: never pass it on a command line).
        base_url: API root; plain http is refused unless the host is loopback.
        request_timeout, max_attempts, backoff_factor, max_retry_after: HTTP retry policy.
        max_run_seconds: a deadline for all of the run's API calls and retry waits together;
            past it the run stops polling and keeps what it got (exit 69).
        max_rechecks: lookups per team and run of backfills to confirm again (hidden by the
            100 cap, or CANCELLED with a run in flight), oldest-checked first.
        max_concurrent_teams: teams polled at once (1: one after another). What is stored is
            the same either way; a 429's Retry-After holds every team's next request.
        sweep: after each team's poll, sweep its transfers, `latest` and backfill runs
            (pipelines/supermetrics/sweep.py); false turns it off.
        max_sweep_requests: the sweep's requests per team and run; what does not fit waits
            for the next run.
        transfers_refresh_hours: how old the stored transfer list may get before it is read
            again (a backfill of a transfer not in it: at most once an hour).
        latest_checks_per_run: transfers per team and run asked for their latest backfill.
        runs_page_size: runs per page of the runs endpoint (`limit`; the API's maximum is 10000).
        baseline: what the destination already holds; None for an empty destination.
        report: filled in with per-team results, errors and warnings while the source runs.
        rounds, between_rounds: poll every team `rounds` times, calling `between_rounds` in
            between (the demo advances the simulator's clock); each round is diffed against the
            one before it, exactly as separate runs would be.

    Returns:
        The resources `polls`, `backfill_versions` (child table `backfill_versions__error_report`),
        `listing_events`, `backfill_lookups`, `transfers`, `transfer_runs` and `api_sweeps`.

    Example:
        >>> report = RunReport()
        >>> pipeline.run(supermetrics(team_ids=[936506], report=report))
    """
    check_setting("max_rechecks", max_rechecks, 0)
    check_setting("max_concurrent_teams", max_concurrent_teams, 1)
    check_setting("max_sweep_requests", max_sweep_requests, 1)
    check_setting("transfers_refresh_hours", transfers_refresh_hours, 0)
    check_setting("latest_checks_per_run", latest_checks_per_run, 0)
    check_setting("runs_page_size", runs_page_size, 1)
    if runs_page_size > settings.RUNS_MAX_PAGE_SIZE:
        raise ConfigError(
            f"runs_page_size = {runs_page_size} is over the API's maximum of {settings.RUNS_MAX_PAGE_SIZE}: "
            "set [sources.supermetrics] runs_page_size in .dlt/config.toml or "
            "SOURCES__SUPERMETRICS__RUNS_PAGE_SIZE"
        )
    if not isinstance(sweep, bool):
        raise ConfigError(
            f"sweep = {sweep!r} must be true or false: set [sources.supermetrics] sweep in "
            ".dlt/config.toml or SOURCES__SUPERMETRICS__SWEEP"
        )
    client = SupermetricsClient(
        base_url,
        api_key,
        timeout=request_timeout,
        max_attempts=max_attempts,
        backoff_factor=backoff_factor,
        max_retry_after=max_retry_after,
        max_run_seconds=max_run_seconds,
    )
    _reports_carry_their_load_id()
    first_run = baseline is None or baseline.next_poll_id == 1
    stored = set() if baseline is None else baseline.tables

    def missing(table: str) -> bool:  # a database older than the table gets it on its next run
        return first_run or table not in stored

    collector = Collector(
        client,
        _team_ids(team_ids),
        baseline or Baseline(),
        report or RunReport(),
        rounds=rounds,
        between_rounds=between_rounds,
        max_rechecks=max_rechecks,
        max_concurrent_teams=max_concurrent_teams,
        sweep=SweepSettings(
            sweep, max_sweep_requests, transfers_refresh_hours, latest_checks_per_run, runs_page_size
        ),
    )

    @dlt.resource(name=settings.POLLS, write_disposition="append", columns=POLL_COLUMNS)
    def polls() -> Iterator[dict[str, Any]]:
        yield from _rows_or_schema(collector.rows.polls, first_run)

    @dlt.resource(
        name=settings.VERSIONS,
        write_disposition="append",
        columns=VERSION_COLUMNS,
        nested_hints={"error_report": dlt.mark.make_nested_hints(columns=ERROR_REPORT_COLUMNS)},
    )
    def backfill_versions() -> Iterator[dict[str, Any]]:
        yield from _rows_or_schema(collector.rows.versions, first_run)

    @dlt.resource(name=settings.LISTING_EVENTS, write_disposition="append", columns=EVENT_COLUMNS)
    def listing_events() -> Iterator[dict[str, Any]]:
        yield from _rows_or_schema(collector.rows.listing_events, first_run)

    @dlt.resource(name=settings.LOOKUPS, write_disposition="append", columns=LOOKUP_COLUMNS)
    def backfill_lookups() -> Iterator[dict[str, Any]]:
        yield from _rows_or_schema(collector.rows.lookups, first_run)

    @dlt.resource(name=settings.TRANSFERS, write_disposition="append", columns=TRANSFER_COLUMNS)
    def transfers() -> Iterator[dict[str, Any]]:
        yield from _rows_or_schema(collector.rows.transfers, missing(settings.TRANSFERS))

    @dlt.resource(name=settings.RUNS, write_disposition="append", columns=RUN_COLUMNS)
    def transfer_runs() -> Iterator[dict[str, Any]]:
        yield from _rows_or_schema(collector.rows.runs, missing(settings.RUNS))

    @dlt.resource(name=settings.SWEEPS, write_disposition="append", columns=SWEEP_COLUMNS)
    def api_sweeps() -> Iterator[dict[str, Any]]:
        yield from _rows_or_schema(collector.rows.sweeps, missing(settings.SWEEPS))

    return [polls, backfill_versions, listing_events, backfill_lookups, transfers, transfer_runs, api_sweeps]

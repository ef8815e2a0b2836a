"""After a team's poll: its transfers, backfills the list never showed, and exact backfill runs.

Three kinds of request, all within `max_requests` per team and run, each logged in `api_sweeps`
(a failure there is a warning: the poll and its lookups are already done and are kept):

- **transfers**: the team's transfer list, when the last good one is older than
  `refresh_hours`, or a backfill names a transfer not in it (at most once an hour: a deleted
  transfer's backfills must not cost a request every run). A transfer's row is stored when its
  name, source, status or schedule changed.
- **latest**: `GET .../transfers/{id}/backfills/latest` for `latest_checks` transfers, the ones
  checked longest ago first. A backfill found there that no poll listed (created and finished
  between two polls) is stored as a version with source `latest`.
- **runs**: for every transfer with a backfill seen in this run (listed, looked up, found by
  `latest`, or forgotten: a lookup's 404), or whose last window did not finish, the runs created
  since its last window, newest first, page by page until a page is short or older than the
  window. Windows are contiguous (a backfill the 100 cap hides may have run since the last one,
  unseen), overlap by `RUNS_OVERLAP_SECONDS` and reach back to the oldest run stored unfinished; runs of type
  `Backfill` are stored when new or changed, so overlaps store nothing twice. A transfer never
  swept starts at its oldest backfill seen in this run.

What this cannot see: runs of a backfill that left no trace in the list or in `latest` (another
backfill of the transfer was created before `latest` was asked), and runs created before the
transfer's first window.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .client import SupermetricsClient
from .errors import ApiError, ApiUnavailableError, AuthError, RateLimitError, RequestRejectedError
from .settings import (
    LATEST_CHECKS_PER_RUN,
    MAX_SWEEP_REQUESTS,
    RUNS_OVERLAP_SECONDS,
    RUNS_PAGE_SIZE,
    TRANSFERS_REFRESH_HOURS,
)
from .transfer_records import parse_runs, parse_transfers
from .validation import BackfillRecord, envelope_data, parse_backfill

OVERLAP = timedelta(seconds=RUNS_OVERLAP_SECONDS)
UNKNOWN_TRANSFER_RETRY = timedelta(hours=1)


@dataclass
class SweepBaseline:
    """What the destination holds that a team's sweep diffs against (read by baseline.py)."""

    transfers: dict[int, str] = field(default_factory=dict)  # transfer id -> stored state hash
    transfers_refreshed_at: datetime | None = None  # the last good transfers list
    next_window: dict[int, datetime] = field(default_factory=dict)  # transfer -> next runs window start
    unfinished: set[int] = field(default_factory=set)  # transfers whose last window did not finish
    runs: dict[int, str] = field(default_factory=dict)  # run id -> stored state hash (recent runs)
    latest_checked: dict[int, int] = field(default_factory=dict)  # transfer -> poll id of last check
    seen_backfills: set[int] = field(default_factory=set)  # every backfill id stored for the team


@dataclass(frozen=True)
class SweepSettings:
    enabled: bool = True
    max_requests: int = MAX_SWEEP_REQUESTS
    refresh_hours: float = TRANSFERS_REFRESH_HOURS
    latest_checks: int = LATEST_CHECKS_PER_RUN
    page_size: int = RUNS_PAGE_SIZE


@dataclass
class SweepRows:
    transfers: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    sweeps: list[dict[str, Any]] = field(default_factory=list)


class _OutOfBudget(Exception):
    pass


class TeamSweep:
    """One team's sweep in one run. `store_version` stores a backfill found by `latest`."""

    def __init__(
        self,
        client: SupermetricsClient,
        team_id: int,
        poll_id: int,
        polled_at: datetime,
        state: SweepBaseline,
        settings: SweepSettings,
        store_version: Callable[[BackfillRecord, datetime], None],
        rows: SweepRows,
        warnings: list[str],
    ) -> None:
        self.client, self.team_id, self.poll_id, self.polled_at = client, team_id, poll_id, polled_at
        self.state, self.settings, self.store_version = state, settings, store_version
        self.rows, self.warnings = rows, warnings
        self.requests = 0

    def run(self, active: dict[int, datetime]) -> None:
        """`active`: transfer id -> the oldest created_time of its backfills seen in this run."""
        windows: list[tuple[int, datetime]] | None = None
        try:
            if self._transfers_due(active):
                self._refresh_transfers()
            for transfer_id in self._latest_due():
                self._check_latest(transfer_id, active)
            windows = self._windows(active)
            while windows:
                self._sweep_runs(*windows[0])
                windows.pop(0)
        except _OutOfBudget:
            pass
        except ApiError as error:  # the API is down or refusing: the rest waits for the next run
            self.warnings.append(f"{error} (the sweep goes on at the next run)")
        if windows is None:  # stopped before the runs: every window waits
            windows = self._windows(active)
        for transfer_id, start in windows:  # not swept: due first at the next run, from the same start
            self._defer(transfer_id, start)

    # -- transfers --------------------------------------------------------------------------

    def defer_all(self, active: dict[int, datetime]) -> None:
        """The run stopped before the sweep (a lookup's outage): every window due waits for the
        next run, from where it starts now."""
        for transfer_id, start in self._windows(active):
            self._defer(transfer_id, start)

    def _transfers_due(self, active: dict[int, datetime]) -> bool:
        refreshed = self.state.transfers_refreshed_at
        if refreshed is None:
            return True
        age = self.polled_at - refreshed
        # a transfer the list lacks (deleted since?) is asked for at most once an hour
        unknown = bool(set(active) - set(self.state.transfers)) and age >= UNKNOWN_TRANSFER_RETRY
        return unknown or age >= timedelta(hours=self.settings.refresh_hours)

    def _refresh_transfers(self) -> None:
        what = f"listing transfers of team {self.team_id}"
        response = self._call(None, "transfers", lambda: self.client.list_transfers(self.team_id))
        if response is None:
            return
        found = parse_transfers(response.body, what)
        for row in found:
            if self.state.transfers.get(row["transfer_id"]) != row["state_hash"]:
                self.rows.transfers.append({**self._keys(response.observed_at), **row})
                self.state.transfers[row["transfer_id"]] = row["state_hash"]
        self._log("transfers", None, response.observed_at, None, "ok", 1, len(found))
        self.state.transfers_refreshed_at = response.observed_at

    # -- latest -----------------------------------------------------------------------------

    def _latest_due(self) -> list[int]:
        checked = self.state.latest_checked
        order = sorted(self.state.transfers, key=lambda t: (checked.get(t, 0), t))
        return order[: self.settings.latest_checks]

    def _check_latest(self, transfer_id: int, active: dict[int, datetime]) -> None:
        what = f"asking for the latest backfill of transfer {transfer_id} of team {self.team_id}"
        self.state.latest_checked[transfer_id] = self.poll_id
        response = self._call(
            transfer_id, "latest", lambda: self.client.latest_backfill(self.team_id, transfer_id)
        )
        if response is None:
            return
        if response.http_status == 404:  # no backfill yet: a real answer
            self._log("latest", transfer_id, response.observed_at, None, "ok", 1, None)
            return
        record = parse_backfill(envelope_data(response.body, what), f"{what}: data")
        found = record.backfill_id
        if found not in self.state.seen_backfills:
            self.store_version(record, response.observed_at)
            self.state.seen_backfills.add(found)
            created = record.fields["created_time"]
            active[transfer_id] = min(active.get(transfer_id, created), created)
        self._log("latest", transfer_id, response.observed_at, None, "ok", 1, found)

    # -- runs -------------------------------------------------------------------------------

    def _windows(self, active: dict[int, datetime]) -> list[tuple[int, datetime]]:
        """(transfer, window start) of every transfer due: those whose last window did not finish
        first (so that a small budget cannot starve them), then the oldest window first."""
        state, windows = self.state, {}
        for transfer_id, oldest_backfill in active.items():
            # windows are contiguous: a backfill the cap hides now may have run since the last one
            windows[transfer_id] = state.next_window.get(transfer_id, oldest_backfill)
        for transfer_id in state.unfinished - set(windows):
            windows[transfer_id] = state.next_window[transfer_id]
        return sorted(windows.items(), key=lambda item: (item[0] not in state.unfinished, item[1], item[0]))

    def _sweep_runs(self, transfer_id: int, start: datetime) -> None:
        what = f"listing runs of transfer {transfer_id} of team {self.team_id}"
        end = self.polled_at + timedelta(days=1)  # the server's clock: whatever it creates meanwhile
        swept_at, requests, stored, offset = None, 0, 0, 0
        while True:
            page = self._call(
                transfer_id,
                "runs",
                lambda offset=offset: self.client.list_runs(
                    self.team_id, transfer_id, start, end, self.settings.page_size, offset
                ),
                window_start=start,
            )
            if page is None:  # failed, and logged so: due again at the next run from the same start
                return
            requests += 1
            swept_at = swept_at or page.observed_at
            runs = parse_runs(page.body, f"{what} (offset {offset})")
            for run in runs:
                known = self.state.runs.get(run["run_id"])
                too_old = run["created_time"] is not None and run["created_time"] < start
                if run["type"] != "Backfill" or known == run["state_hash"] or (too_old and known is None):
                    continue
                self.rows.runs.append({**self._keys(page.observed_at), "transfer_id": transfer_id, **run})
                self.state.runs[run["run_id"]] = run["state_hash"]
                stored += 1
            oldest = runs[-1]["created_time"] if runs else None
            if len(runs) < self.settings.page_size or (oldest is not None and oldest < start):
                break
            offset += self.settings.page_size
        self._log("runs", transfer_id, swept_at, start, "ok", requests, stored)
        self.state.unfinished.discard(transfer_id)
        self.state.next_window[transfer_id] = swept_at - OVERLAP

    def _defer(self, transfer_id: int, start: datetime) -> None:
        """A window this run could not sweep (out of requests, or the API stopped answering) is
        logged, so that the next run sweeps it first; not again when the log already says so."""
        state = self.state
        if transfer_id in state.unfinished and state.next_window.get(transfer_id) == start:
            return
        self._log("runs", transfer_id, self.polled_at, start, "deferred", 0, None)
        state.unfinished.add(transfer_id)
        state.next_window[transfer_id] = start

    # -- requests and the log ---------------------------------------------------------------

    def _call(
        self,
        transfer_id: int | None,
        kind: str,
        request: Callable[[], Any],
        window_start: datetime | None = None,
    ) -> Any:
        """The answer, or None after logging a failure that only this request suffers."""
        if self.requests >= self.settings.max_requests:
            raise _OutOfBudget
        self.requests += 1
        try:
            return request()
        except RequestRejectedError as error:
            if kind == "latest" and error.http_status == 404:
                return _NotFound(error.server_time or self.polled_at)
            failure = error
        except ApiError as error:
            failure = error
        self._log(
            kind, transfer_id, failure.server_time or self.polled_at, window_start, "failed", 1, None, failure
        )
        if kind == "runs":  # as the stored log now says: its window is still to be swept
            self.state.unfinished.add(transfer_id)
            self.state.next_window[transfer_id] = window_start
        if isinstance(failure, ApiUnavailableError | RateLimitError | AuthError):
            raise failure
        self.warnings.append(f"{failure} (tried again at the next run)")
        return None

    def _keys(self, observed_at: datetime) -> dict[str, Any]:
        return {"poll_id": self.poll_id, "team_id": self.team_id, "observed_at": observed_at}

    def _log(
        self,
        kind: str,
        transfer_id: int | None,
        swept_at: datetime,
        window_start: datetime | None,
        outcome: str,
        requests: int,
        found: int | None,
        error: ApiError | None = None,
    ) -> None:
        self.rows.sweeps.append(
            {
                "poll_id": self.poll_id,
                "team_id": self.team_id,
                "kind": kind,
                "transfer_id": transfer_id,
                "swept_at": swept_at,
                "window_start": window_start,
                "outcome": outcome,
                "requests": requests,
                "found": found,
                "error_message": None if error is None else str(error),
            }
        )


@dataclass
class _NotFound:
    """`latest`'s 404: the transfer has no backfill yet."""

    observed_at: datetime
    http_status: int = 404

"""One ingest run's HTTP work and change detection: poll each team, diff against what is stored,
look up the backfills that left the list, and produce the rows of the raw tables.

Nothing here touches the database: what is stored comes in as a `Baseline` and what changed
goes out as `Rows`, so the semantics can be read (and tested) in one place:

- a poll row for every poll, failed ones included; a failed poll changes nothing else;
- a `listed` / `unlisted` listing event when a backfill enters or leaves the list;
- a version row only when a backfill's state differs from its latest stored one, with its
  error report as child rows only when the report itself changed;
- one lookup by id for each backfill that left the list, and for earlier lookups that failed;
- rechecks, at most `max_rechecks` a run per team, oldest-checked first: backfills the 100 cap
  hides (a lookup said still incomplete) until a lookup confirms a final state, and CANCELLED
  backfills while a run of theirs may be in flight (it finishes after a cancel, and counts): their
  counters moved at the last lookup, or the runs endpoint shows a run with no end, or was not
  asked since the cancel (baseline.py), at most `CANCELLED_LOOKUPS` lookups in all;
- then, unless turned off, the team's sweep of transfers, `latest` and runs (sweep.py).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from .client import ApiResponse, SupermetricsClient
from .errors import (
    ApiError,
    ApiUnavailableError,
    AuthError,
    InvalidResponseError,
    MonitorError,
    RateLimitError,
    RequestRejectedError,
)
from .settings import (
    CANCELLED_LOOKUPS,
    FINAL_STATUSES,
    LIST_LIMIT,
    MAX_CONCURRENT_TEAMS,
    MAX_RECHECKS_PER_RUN,
)
from .sweep import SweepBaseline, SweepRows, SweepSettings, TeamSweep
from .validation import BackfillRecord, envelope_data, parse_backfill, parse_listing


@dataclass(frozen=True)
class KnownBackfill:
    """The latest stored version of a backfill, as far as change detection needs it."""

    state_hash: str
    error_report_hash: str
    error_report_poll_id: int
    errors: frozenset[tuple[date, str]] = frozenset()
    transfer_id: int | None = None  # where its runs are: swept also when the API forgot it
    created_time: datetime | None = None


@dataclass
class TeamBaseline:
    listed: set[int] = field(default_factory=set)  # listed in the team's last successful poll
    pending_lookups: set[int] = field(default_factory=set)  # left the list, final state not yet known
    # to look up again, with the poll of their last answered lookup: hidden by the cap, or
    # CANCELLED with counters that moved at the last lookup
    rechecks: dict[int, int] = field(default_factory=dict)
    cancelled_lookups: dict[int, int] = field(default_factory=dict)  # answered lookups saying CANCELLED
    # latest versions of those and of backfills confirmed still incomplete or not found, which
    # may be listed again
    known: dict[int, KnownBackfill] = field(default_factory=dict)
    sweep: SweepBaseline = field(default_factory=SweepBaseline)


@dataclass
class Baseline:
    next_poll_id: int = 1
    teams: dict[int, TeamBaseline] = field(default_factory=dict)
    tables: set[str] = field(default_factory=set)  # the raw tables the destination has

    def team(self, team_id: int) -> TeamBaseline:
        return self.teams.setdefault(team_id, TeamBaseline())


@dataclass
class Rows(SweepRows):
    polls: list[dict[str, Any]] = field(default_factory=list)
    versions: list[dict[str, Any]] = field(default_factory=list)
    listing_events: list[dict[str, Any]] = field(default_factory=list)
    lookups: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class TeamResult:
    """What one team's poll did, for the run summary."""

    team_id: int
    poll_id: int
    ok: bool = False
    listed: int = 0
    changed: int = 0
    left: int = 0
    finished: int = 0
    new_errors: int = 0
    lookups_failed: int = 0
    sweep_requests: int = 0
    runs_stored: int = 0
    error: MonitorError | None = None  # why its poll failed


@dataclass
class TeamWork:
    """One team's poll in one round: its own rows and warnings, merged in team order afterwards,
    so that teams polled at the same time store exactly what one after another would."""

    result: TeamResult
    rows: Rows = field(default_factory=Rows)
    warnings: list[str] = field(default_factory=list)
    polled: bool = False
    stopped_by: ApiError | None = None  # a failure that stops the run, the poll's or a lookup's
    active: dict[int, datetime] = field(default_factory=dict)  # transfer -> oldest backfill seen now


@dataclass
class RunReport:
    """Filled in by the source while it runs; read by the CLI afterwards."""

    teams: list[TeamResult] = field(default_factory=list)
    errors: list[MonitorError] = field(default_factory=list)  # failed polls: the run exits non-zero
    warnings: list[str] = field(default_factory=list)  # kept going: unknown fields, failed lookups
    not_polled: list[int] = field(default_factory=list)  # teams after a failure that stops the run
    requests: int = 0
    sweep_budget: int = 0  # the sweep's requests per team and run; 0 when it is off


# A failure that would repeat for every team: stop polling the rest.
def _stops_the_run(error: ApiError) -> bool:
    return isinstance(error, ApiUnavailableError | RateLimitError) or (
        isinstance(error, AuthError) and error.http_status == 401
    )


class Collector:
    """Polls the teams and keeps the rows; resources read `rows` (computed on first use).

    Normally one round: one poll per team. With `rounds` > 1 it polls every team again after
    calling `between_rounds` (the demo moves the simulator's clock there), diffing each round
    against the previous one kept in memory, exactly as separate runs would against the database.

    Up to `max_concurrent_teams` teams are polled at once (each team's lookups follow its own
    poll). A failure that stops the run lets the teams already under way finish; the others are
    not polled.
    """

    def __init__(
        self,
        client: SupermetricsClient,
        team_ids: list[int],
        baseline: Baseline,
        report: RunReport,
        rounds: int = 1,
        between_rounds: Callable[[], None] | None = None,
        max_rechecks: int = MAX_RECHECKS_PER_RUN,
        max_concurrent_teams: int = MAX_CONCURRENT_TEAMS,
        sweep: SweepSettings | None = None,
    ) -> None:
        self.sweep = sweep or SweepSettings()
        report.sweep_budget = self.sweep.max_requests if self.sweep.enabled else 0
        self.max_rechecks = max_rechecks
        self.max_concurrent_teams = max_concurrent_teams
        self.client = client
        self.team_ids = team_ids
        self.baseline = baseline
        self.report = report
        self.rounds = rounds
        self.between_rounds = between_rounds
        self._rows: Rows | None = None

    @property
    def rows(self) -> Rows:
        if self._rows is None:
            self._rows = Rows()
            try:
                self._collect()
            finally:
                self.report.requests = self.client.requests_made
        return self._rows

    def _collect(self) -> None:
        next_poll_id = self.baseline.next_poll_id
        for team_id in self.team_ids:  # created here, not in the threads
            self.baseline.team(team_id)
        for round_number in range(self.rounds):
            if round_number and self.between_rounds is not None:
                self.between_rounds()
            works = [TeamWork(TeamResult(t, next_poll_id + n)) for n, t in enumerate(self.team_ids)]
            next_poll_id += len(works)
            self._poll_round(works)
            self._merge(works)

    def _poll_round(self, works: list[TeamWork]) -> None:
        stop = threading.Event()

        def poll(work: TeamWork) -> None:
            if stop.is_set():  # this round's remaining teams wait for the next one, as for a new run
                return
            work.polled = True
            if not self._poll_team(work, self.baseline.team(work.result.team_id)):
                stop.set()

        workers = min(self.max_concurrent_teams, len(works))
        if workers == 1:
            for work in works:
                poll(work)
            return
        _run_at_most(workers, works, poll)

    def _merge(self, works: list[TeamWork]) -> None:
        """The round's rows, summary and errors in team order."""
        polled = [w for w in works if w.polled]
        self.report.not_polled = [w.result.team_id for w in works if not w.polled]
        for work in polled:
            for name in ("polls", "versions", "listing_events", "lookups", "transfers", "runs", "sweeps"):
                getattr(self._rows, name).extend(getattr(work.rows, name))
            self.report.teams.append(work.result)
            self.report.warnings.extend(work.warnings)
            if work.result.error is not None:
                self.report.errors.append(work.result.error)
            elif work.stopped_by is not None and self.report.not_polled:
                # a lookup's outage stopped the run: alone a warning, but it cost other teams
                # their poll, so the run fails with it
                self.report.errors.append(work.stopped_by)

    def _poll_team(self, work: TeamWork, known: TeamBaseline) -> bool:
        """One team's poll and lookups. False when the run must stop."""
        result = work.result
        rows, poll_id, team_id = work.rows, result.poll_id, result.team_id
        response = None
        try:
            response = self.client.list_backfills(team_id)
            records = parse_listing(response.body, f"listing backfills of team {team_id}")
        except ApiError as error:
            _keep_answer_facts(error, response)
            rows.polls.append(_failed_poll(poll_id, team_id, error))
            result.error = error
            if _stops_the_run(error):
                work.stopped_by = error
                return False
            return True
        observed_at = response.observed_at
        listed_now = {r.backfill_id for r in records}
        for record in records:
            _saw(work, known, record)
            work.warnings.extend(record.warnings)
            if record.backfill_id not in known.listed:
                rows.listing_events.append(
                    _event(poll_id, team_id, record.backfill_id, "listed", observed_at)
                )
            result.changed += self._version(work, known, record, "list", observed_at)
        left = known.listed - listed_now
        for backfill_id in sorted(left):
            rows.listing_events.append(_event(poll_id, team_id, backfill_id, "unlisted", observed_at))
        result.ok, result.listed, result.left = True, len(records), len(left)
        rows.polls.append(_ok_poll(poll_id, team_id, response, len(records), len(left)))
        to_look_up = sorted(left | (known.pending_lookups - listed_now))
        for backfill_id in listed_now:  # listed again: the list says how it is
            known.rechecks.pop(backfill_id, None)
        due = sorted((checked, b) for b, checked in known.rechecks.items() if b not in to_look_up)
        to_look_up += [b for _, b in due[: self.max_rechecks]]
        known.listed = listed_now
        looked_up = self._look_up(work, known, to_look_up)
        if self.sweep.enabled:
            self._sweep(work, known, observed_at, stopped=not looked_up)
        return looked_up

    def _sweep(self, work: TeamWork, known: TeamBaseline, polled_at: datetime, stopped: bool) -> None:
        """The team's sweep; when its lookups stopped the run, only the note of what is due."""
        result = work.result

        def store_version(record: BackfillRecord, observed_at: datetime) -> None:
            result.changed += self._version(work, known, record, "latest", observed_at)

        sweep = TeamSweep(
            self.client,
            result.team_id,
            result.poll_id,
            polled_at,
            known.sweep,
            self.sweep,
            store_version,
            work.rows,
            work.warnings,
        )
        if stopped:
            sweep.defer_all(work.active)
            return
        stored_before = len(work.rows.runs)
        sweep.run(work.active)
        result.sweep_requests = sweep.requests
        result.runs_stored = len(work.rows.runs) - stored_before

    def _look_up(self, work: TeamWork, known: TeamBaseline, backfill_ids: list[int]) -> bool:
        """Look each backfill up by id. A failed lookup is retried next run (a recheck stays due)."""
        result = work.result
        team_id = result.team_id
        retries, known.pending_lookups = known.pending_lookups, set()
        for position, backfill_id in enumerate(backfill_ids):
            what = f"looking up backfill {backfill_id} of team {team_id}"
            reason = (
                "recheck" if backfill_id in known.rechecks else "retry" if backfill_id in retries else "left"
            )
            row = {
                "poll_id": result.poll_id,
                "team_id": team_id,
                "transfer_backfill_id": backfill_id,
                "reason": reason,
            }
            response = None
            try:
                response = self.client.get_backfill(team_id, backfill_id)
                record = parse_backfill(envelope_data(response.body, what), f"{what}: data")
                if record.backfill_id != backfill_id:
                    raise InvalidResponseError(f"{what}: the answer is about backfill {record.backfill_id}")
            except ApiError as error:
                _keep_answer_facts(error, response)
                if isinstance(error, RequestRejectedError) and error.http_status == 404:
                    outcome = "not_found"
                    known.rechecks.pop(backfill_id, None)
                    known.cancelled_lookups.pop(backfill_id, None)
                    _forgotten(work, known.known.get(backfill_id))
                else:
                    outcome = "failed"
                    result.lookups_failed += 1
                    if reason != "recheck":  # a recheck keeps its place: oldest-checked first
                        known.pending_lookups.add(backfill_id)
                    work.warnings.append(f"{error} (will retry on the next run)")
                work.rows.lookups.append({**row, **_lookup_error(outcome, error)})
                if outcome == "failed" and _stops_the_run(error):
                    work.stopped_by = error
                    untried = set(backfill_ids[position + 1 :]) - set(known.rechecks)
                    known.pending_lookups.update(untried)  # not tried: still pending
                    return False
                continue
            _saw(work, known, record)
            work.warnings.extend(record.warnings)
            final = record.status in FINAL_STATUSES
            result.finished += final and backfill_id not in known.cancelled_lookups  # not counted twice
            changed = self._version(work, known, record, "lookup", response.observed_at)
            result.changed += changed
            self._after_answer(known, backfill_id, record.status, bool(changed), result.poll_id)
            work.rows.lookups.append(
                {
                    **row,
                    "looked_up_at": response.observed_at,
                    "outcome": "final" if final else "incomplete",
                    "status": record.status,
                    "http_status": 200,
                    "request_id": response.request_id,
                    "duration_ms": response.duration_ms,
                }
            )
        return True

    @staticmethod
    def _after_answer(
        known: TeamBaseline, backfill_id: int, status: str, changed: bool, poll_id: int
    ) -> None:
        """Whether an answered lookup is looked up again on a later run (see the module docstring)."""
        if status == "CANCELLED":
            count = known.cancelled_lookups.get(backfill_id, 0) + 1
            known.cancelled_lookups[backfill_id] = count
            still_moving = changed and count < CANCELLED_LOOKUPS
        else:
            still_moving = status not in FINAL_STATUSES  # hidden by the cap: not finished yet
        if still_moving:
            known.rechecks[backfill_id] = poll_id
            return
        known.rechecks.pop(backfill_id, None)
        known.cancelled_lookups.pop(backfill_id, None)
        if status in FINAL_STATUSES:
            known.known.pop(backfill_id, None)  # confirmed finished: it cannot come back

    def _version(
        self,
        work: TeamWork,
        known_team: TeamBaseline,
        record: BackfillRecord,
        source: str,
        observed_at: datetime,
    ) -> int:
        """Append a version row if the record differs from the stored one; returns 1 if it did."""
        result = work.result
        known = known_team.known.get(record.backfill_id)
        if known is not None and known.state_hash == record.state_hash:
            return 0
        report_changed = known is None or known.error_report_hash != record.error_report_hash
        row = {
            "poll_id": result.poll_id,
            "team_id": result.team_id,
            "observed_at": observed_at,
            "source": source,
            **record.fields,
            "error_count": len(record.error_report),
            "state_hash": record.state_hash,
            "error_report_hash": record.error_report_hash,
            # the version whose child rows hold this state's error report
            "error_report_poll_id": result.poll_id if report_changed else known.error_report_poll_id,
            "extra_fields": json.dumps(record.extra_fields, sort_keys=True) if record.extra_fields else None,
        }
        if report_changed:
            row["error_report"] = record.error_report
        errors = frozenset((e["transfer_run_date"], e["error"]) for e in record.error_report)
        result.new_errors += len(errors - (known.errors if known else frozenset()))
        work.rows.versions.append(row)
        known_team.known[record.backfill_id] = KnownBackfill(
            record.state_hash,
            record.error_report_hash,
            row["error_report_poll_id"],
            errors,
            record.fields["transfer_id"],
            record.fields["created_time"],
        )
        return 1


def _run_at_most(workers: int, works: list[TeamWork], poll: Callable[[TeamWork], None]) -> None:
    """`poll` each work, `workers` at a time, started in order. Daemon threads: Ctrl-C ends the
    run at once instead of waiting for the calls under way (a pool's threads would be joined)."""
    queue = iter(works)
    lock = threading.Lock()
    failures: list[BaseException] = []

    def worker() -> None:
        while True:
            with lock:
                work = next(queue, None)
            if work is None:
                return
            try:
                poll(work)
            except BaseException as exc:  # raised in the caller's thread below
                failures.append(exc)
                return

    threads = [threading.Thread(target=worker, name=f"poll-{n}", daemon=True) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


def _saw(work: TeamWork, known: TeamBaseline, record: BackfillRecord) -> None:
    """A backfill in this run's answers: its transfer's runs are due, and `latest` knows it."""
    transfer_id, created = record.fields["transfer_id"], record.fields["created_time"]
    work.active[transfer_id] = min(work.active.get(transfer_id, created), created)
    known.sweep.seen_backfills.add(record.backfill_id)


def _forgotten(work: TeamWork, stored: KnownBackfill | None) -> None:
    """A backfill the API forgot (404): the runs endpoint still knows its runs, so its transfer's
    runs are due, from its creation on."""
    if stored is None or stored.transfer_id is None or stored.created_time is None:
        return
    transfer_id, created = stored.transfer_id, stored.created_time
    work.active[transfer_id] = min(work.active.get(transfer_id, created), created)


def _keep_answer_facts(error: ApiError, response: ApiResponse | None) -> None:
    """A 200 whose body is not the documented shape still came from the server: keep its status
    and its clock (the Date header) for the poll log, not this machine's."""
    if response is not None:
        error.http_status = error.http_status or response.http_status
        error.server_time = error.server_time or response.server_time


def _event(poll_id: int, team_id: int, backfill_id: int, event: str, observed_at: datetime) -> dict[str, Any]:
    return {
        "poll_id": poll_id,
        "team_id": team_id,
        "transfer_backfill_id": backfill_id,
        "event": event,
        "observed_at": observed_at,
    }


def _ok_poll(poll_id: int, team_id: int, response: ApiResponse, listed: int, left: int) -> dict[str, Any]:
    return {
        "poll_id": poll_id,
        "team_id": team_id,
        "polled_at": response.observed_at,
        "received_at": response.received_at,
        "outcome": "ok",
        "http_status": response.http_status,
        "request_id": response.request_id,
        "backfills_listed": listed,
        "possibly_truncated": listed >= LIST_LIMIT,
        "backfills_left": left,
        "duration_ms": response.duration_ms,
        "rate_limit_remaining": response.rate_limit_remaining,
    }


def _failed_poll(poll_id: int, team_id: int, error: ApiError) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "poll_id": poll_id,
        "team_id": team_id,
        "polled_at": error.server_time or now,
        "received_at": now,
        "outcome": "failed",
        "http_status": error.http_status,
        "error_code": error.error_code,
        "error_class": error.failure_class,
        "error_message": str(error),
        "api_message": error.api_message,
        "request_id": error.request_id,
    }


def _lookup_error(outcome: str, error: ApiError) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "looked_up_at": error.server_time or now,
        "outcome": outcome,
        "http_status": error.http_status,
        "error_code": error.error_code,
        "error_message": str(error),
        "api_message": error.api_message,
        "request_id": error.request_id,
    }

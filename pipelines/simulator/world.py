"""The simulated world: teams, transfers and backfills moving through their states.

Time only moves when someone looks: every API call first runs `sync()`, which processes the
scheduled events (runs finishing, backfills starting) up to the clock's current time, in time
order. With a seed and a manual clock the world is fully deterministic.

A backfill's life:

    CREATED --(runs created)--> SCHEDULED --(a team slot is free)--> RUNNING
    RUNNING --(every run done, none failed)--> COMPLETED
    RUNNING --(every run done, some failed)--> FAILED --(retry)--> RUNNING (SCHEDULED while no slot is free)
    any incomplete status --(cancel)--> CANCELLED

Runs go one day at a time, newest day first. A team runs at most `max_running` backfills at once;
the rest wait as SCHEDULED, oldest first.

Every run is also a transfer run (`TransferRun`, served by the runs endpoints): a backfill's day is
a run of type `Backfill`, created when the day starts and ended when it is done; a retry makes new
runs for the same days. Each transfer also makes one `Recurring` run a day, at its `run_hour`, for
yesterday's data. Runs draw their rows and durations from a second random generator, so that they
do not change the backfills a seed gives.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from .catalogue import DATA_SOURCES, random_error
from .clock import SimClock

INCOMPLETE_STATUSES = ("CREATED", "SCHEDULED", "RUNNING", "FAILED")
FINAL_STATUSES = ("COMPLETED", "CANCELLED")
LIST_LIMIT = 100


class ApiError(Exception):
    """An error answer of the API: HTTP status plus the envelope's code, message, description."""

    def __init__(self, status: int, code: str, message: str, description: str | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.description = description


def not_found(what: str) -> ApiError:
    return ApiError(
        404,
        "NOT_FOUND",
        "Not Found",
        f"The requested {what} could not be found or you do not have access to it.",
    )


def iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Transfer:
    id: int
    team_id: int
    source: str
    failure_rate: float  # probability that one transfer run fails
    median_run_seconds: float
    created_time: datetime
    display_name: str = ""
    run_hour: int = 2  # UTC hour of the daily Recurring run

    def to_api(self) -> dict:
        """The transfer as the list endpoint serialises it (schema `TransferInfoResponse`)."""
        return {
            "dwh_transfer_id": self.id,
            "display_name": self.display_name,
            "external_transfer_id": f"ext-{self.id}",
            "status": "active",
            "state": "active",
            "schedule": "daily",
            "run_date": (self.created_time.date()).isoformat(),
            "data_source": {"data_source_id": _source_id(self.source), "service_name": self.source},
            "destination": {"destination_id": 8, "type": "BigQuery"},
            "accounts": [],
            "backfill": None,
        }

    def configuration(self) -> dict:
        """The transfer as the one-transfer endpoint serialises it (`TransferConfigurationResponse`)."""
        return {
            "transfer_id": self.id,
            "display_name": self.display_name,
            "schema_id": 2,
            "destination_id": 8,
            "accounts": [],
            "segments": [],
            "schedule": [{"run_interval": "daily", "run_hour": self.run_hour, "refresh_window": 1}],
            "data_source": {
                "data_source_id": _source_id(self.source),
                "service_name": self.source,
                "service_provider": "Supermetrics",
                "settings": [],
            },
            "notification_recipients": None,
            "external_url": None,
        }


def _source_id(source: str) -> str:
    return "".join(word[0] for word in source.split()).upper()


@dataclass
class TransferRun:
    """One run of a transfer for one data date: a backfill's day (`Backfill`) or the daily one."""

    id: int
    team_id: int
    transfer_id: int
    type: str  # Recurring | Backfill
    data_date: date
    created_time: datetime
    backfill_id: int | None = None  # the truth the API does not serve: which backfill made it
    status: str = "RUNNING"
    ended_time: datetime | None = None
    total_rows: int | None = None
    message: str = ""
    queries: list[dict] = field(default_factory=list)

    @property
    def total_duration(self) -> float | None:
        if self.ended_time is None:
            return None
        return round((self.ended_time - self.created_time).total_seconds(), 3)

    def to_api(self) -> dict:
        """The run as the runs list serialises it (schema `TransferRunItem`)."""
        return {
            "id": self.id,
            "status": self.status,
            "created_time": iso(self.created_time),
            "ended_time": iso(self.ended_time),
            "type": self.type,
            "total_duration": self.total_duration,
            "total_rows": self.total_rows,
            "data_date": self.data_date.isoformat(),
            "message": self.message,
        }

    def detail(self) -> dict:
        """The run as the one-run endpoint serialises it (schema `TransferRunDetail`)."""
        body = self.to_api()
        del body["type"]
        return {
            **body,
            "started_time": iso(self.created_time),  # the simulator starts a run when it creates it
            "queued_time": iso(self.created_time),
            "query_details": [dict(q) for q in self.queries],
            "external_id": f"ext-{self.id}",
            "failed_query_amount": sum(q["status"] == "FAILED" for q in self.queries),
            "query_amount": len(self.queries),
        }


@dataclass
class Backfill:
    id: int
    team_id: int
    transfer_id: int
    range_start: date
    range_end: date
    created_time: datetime
    created_user_id: int
    status: str = "CREATED"
    start_time: datetime | None = None
    end_time: datetime | None = None
    removed_time: datetime | None = None
    removed_user_id: int | None = None
    runs_created: int = 0
    runs_completed: int = 0
    runs_failed: int = 0
    pending_days: list[date] = field(default_factory=list)  # newest first
    errors: list[dict[str, str]] = field(default_factory=list)

    @property
    def runs_total(self) -> int:
        return (self.range_end - self.range_start).days + 1

    @property
    def is_incomplete(self) -> bool:
        return self.status in INCOMPLETE_STATUSES

    def to_api(self) -> dict:
        """The backfill as the API serialises it (schema `Backfill`)."""
        body = {
            "transfer_backfill_id": self.id,
            "transfer_id": self.transfer_id,
            "range_start_date": self.range_start.isoformat(),
            "range_end_date": self.range_end.isoformat(),
            "created_time": iso(self.created_time),
            "created_user_id": self.created_user_id,
            "start_time": iso(self.start_time),
            "end_time": iso(self.end_time),
            "status": self.status,
            "transfer_runs_total": self.runs_total,
            "transfer_runs_created": self.runs_created,
            "transfer_runs_completed": self.runs_completed,
            "transfer_runs_failed": self.runs_failed,
            "error_report": [dict(e) for e in self.errors],
        }
        if self.removed_time is not None:
            body["removed_time"] = iso(self.removed_time)
            body["removed_user_id"] = self.removed_user_id
        return body


@dataclass(frozen=True)
class Change:
    """One entry of the world's ledger: a backfill's whole state just after it changed."""

    at: datetime
    team_id: int
    state: dict  # as the API would serialise it at that moment


@dataclass
class Team:
    id: int
    transfers: dict[int, Transfer] = field(default_factory=dict)
    backfills: dict[int, Backfill] = field(default_factory=dict)
    runs: dict[int, TransferRun] = field(default_factory=dict)


@dataclass(frozen=True)
class Timing:
    """How long things take, in simulated seconds."""

    runs_created_after: tuple[float, float] = (20, 180)  # CREATED -> SCHEDULED, uniform
    pickup_after: tuple[float, float] = (30, 300)  # SCHEDULED -> RUNNING when a slot is free, uniform
    gap_between_runs: tuple[float, float] = (2, 15)  # uniform
    run_sigma: float = 0.6  # lognormal spread of one run's duration around the transfer's median
    run_bounds: tuple[float, float] = (5, 3600)


class World:
    """All teams' state, advanced lazily to the clock's time. Thread-safe."""

    def __init__(
        self,
        clock: SimClock,
        seed: int = 0,
        max_running: int = 3,
        timing: Timing | None = None,
        retention: timedelta | None = None,
        keep_ledger: bool = False,
    ) -> None:
        self.clock = clock
        self.rng = random.Random(seed)
        self.run_rng = random.Random(seed + 1)  # rows and recurring runs: leaves `rng`'s draws alone
        self.max_running = max_running
        self.timing = timing or Timing()
        self.retention = retention  # finished backfills are forgotten (404) after this long
        self.lock = threading.RLock()
        self.teams: dict[int, Team] = {}
        self.failure_hooks: list[Callable[[Backfill], None]] = []
        # The true history, kept only when asked (tests): every change of every backfill, in time
        # order, retention and `forget` notwithstanding.
        self.ledger: list[Change] | None = [] if keep_ledger else None
        self._events: list[tuple[datetime, int, Callable[..., None], tuple]] = []
        self._seq = itertools.count()
        self._now = clock.now()
        self._backfill_ids = itertools.count(10_001)
        self._transfer_ids = itertools.count(456_001)
        self._run_ids = itertools.count(7_000_001)

    # -- time -------------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        """The world's current time: the clock's at the last sync, or an event's while it runs."""
        return self._now

    def schedule(self, at: datetime, action: Callable[..., None], *args: object) -> None:
        heapq.heappush(self._events, (at, next(self._seq), action, args))

    def sync(self) -> datetime:
        """Process every event due up to the clock's current time."""
        with self.lock:
            target = self.clock.now()
            while self._events and self._events[0][0] <= target:
                at, _, action, args = heapq.heappop(self._events)
                self._now = max(self._now, at)
                action(*args)
            self._now = max(self._now, target)
            self._purge_expired()
            return self._now

    # -- setup ------------------------------------------------------------------------------

    def add_team(self, team_id: int, transfers: int = 0) -> Team:
        with self.lock:
            team = self.teams.setdefault(team_id, Team(team_id))
            for _ in range(transfers):
                self.add_transfer(team_id)
            return team

    def add_transfer(
        self,
        team_id: int,
        failure_rate: float | None = None,
        median_run_seconds: float | None = None,
        transfer_id: int | None = None,
    ) -> Transfer:
        with self.lock:
            team = self.teams[team_id]
            rng = self.rng
            transfer = Transfer(
                id=transfer_id if transfer_id is not None else next(self._transfer_ids),
                team_id=team_id,
                source=rng.choice(DATA_SOURCES),
                # most transfers are healthy, a few are flaky
                failure_rate=failure_rate
                if failure_rate is not None
                else rng.choice((0, 0, 0.01, 0.03, 0.15)),
                median_run_seconds=median_run_seconds
                if median_run_seconds is not None
                else rng.uniform(60, 600),
                created_time=self._now,
            )
            transfer.display_name = f"{transfer.source} {transfer.id}"
            transfer.run_hour = transfer.id % 24
            team.transfers[transfer.id] = transfer
            first = self._now.replace(hour=transfer.run_hour, minute=0, second=0, microsecond=0)
            self.schedule(
                first if first > self._now else first + timedelta(days=1), self._recurring, transfer
            )
            return transfer

    def rename_transfer(self, team_id: int, transfer_id: int, display_name: str) -> Transfer:
        with self.lock:
            transfer = self.transfer(team_id, transfer_id)
            transfer.display_name = display_name
            return transfer

    # -- queries ----------------------------------------------------------------------------

    def team(self, team_id: int) -> Team:
        team = self.teams.get(team_id)
        if team is None:
            raise ApiError(403, "ACCESS_DENIED", "Access Denied", "You do not have access to this team.")
        return team

    def transfer(self, team_id: int, transfer_id: int) -> Transfer:
        with self.lock:
            transfer = self.team(team_id).transfers.get(transfer_id)
            if transfer is None:
                raise not_found("transfer")
            return transfer

    def transfer_runs(self, team_id: int, transfer_id: int) -> list[TransferRun]:
        with self.lock:
            self.transfer(team_id, transfer_id)
            return [r for r in self.team(team_id).runs.values() if r.transfer_id == transfer_id]

    def transfer_run(self, team_id: int, run_id: int) -> TransferRun:
        with self.lock:
            run = self.team(team_id).runs.get(run_id)
            if run is None:
                raise not_found("transfer run")
            return run

    def list_incomplete(self, team_id: int) -> list[Backfill]:
        """Incomplete backfills, newest first, at most 100: what the list endpoint returns."""
        with self.lock:
            team = self.team(team_id)
            incomplete = [b for b in team.backfills.values() if b.is_incomplete]
            incomplete.sort(key=lambda b: (b.created_time, b.id), reverse=True)
            return incomplete[:LIST_LIMIT]

    def get(self, team_id: int, backfill_id: int) -> Backfill:
        with self.lock:
            backfill = self.team(team_id).backfills.get(backfill_id)
            if backfill is None:
                raise not_found("backfill")
            return backfill

    def latest(self, team_id: int, transfer_id: int) -> Backfill:
        with self.lock:
            team = self.team(team_id)
            if transfer_id not in team.transfers:
                raise not_found("transfer")
            candidates = [b for b in team.backfills.values() if b.transfer_id == transfer_id]
            if not candidates:
                raise ApiError(
                    404, "NOT_FOUND", "Not Found", "No backfill has been created for this transfer yet."
                )
            return max(candidates, key=lambda b: (b.created_time, b.id))

    # -- commands ---------------------------------------------------------------------------

    def create(
        self, team_id: int, transfer_id: int, range_start: date, range_end: date, user_id: int
    ) -> Backfill:
        with self.lock:
            team = self.team(team_id)
            if transfer_id not in team.transfers:
                raise not_found("transfer")
            if range_start > range_end:
                raise ApiError(
                    422,
                    "UNPROCESSABLE_ENTITY",
                    "Validation failed for the request parameters.",
                    "range_start must not be after range_end.",
                )
            if range_end >= self._now.date():
                raise ApiError(
                    422,
                    "UNPROCESSABLE_ENTITY",
                    "Validation failed for the request parameters.",
                    "A backfill can only cover dates before today.",
                )
            for other in team.backfills.values():
                if (
                    other.transfer_id == transfer_id
                    and other.is_incomplete
                    and other.range_start <= range_end
                    and range_start <= other.range_end
                ):
                    raise ApiError(
                        422,
                        "UNPROCESSABLE_ENTITY",
                        "Validation failed for the request parameters.",
                        f"The date range overlaps active backfill {other.id} of this transfer.",
                    )
            backfill = Backfill(
                id=next(self._backfill_ids),
                team_id=team_id,
                transfer_id=transfer_id,
                range_start=range_start,
                range_end=range_end,
                created_time=self._now,
                created_user_id=user_id,
            )
            team.backfills[backfill.id] = backfill
            self._record(backfill)
            self.schedule(
                self._now + self._uniform(self.timing.runs_created_after), self._create_runs, backfill
            )
            return backfill

    def cancel(self, team_id: int, backfill_id: int, user_id: int) -> Backfill:
        with self.lock:
            backfill = self.get(team_id, backfill_id)
            if not backfill.is_incomplete:
                raise ApiError(
                    422,
                    "UNPROCESSABLE_ENTITY",
                    "Validation failed for the request parameters.",
                    f"Backfill {backfill_id} is already {backfill.status} and cannot be updated.",
                )
            # pending runs are dropped; a run already in flight still finishes and counts
            backfill.status = "CANCELLED"
            backfill.end_time = backfill.removed_time = self._now
            backfill.removed_user_id = user_id
            backfill.pending_days.clear()
            self._record(backfill)
            self._dispatch(self.teams[team_id])
            return backfill

    def retry(self, team_id: int, backfill_id: int) -> Backfill:
        """Re-run a FAILED backfill's failed days (what a user's retry in the Hub does)."""
        with self.lock:
            backfill = self.get(team_id, backfill_id)
            if backfill.status != "FAILED":
                raise ApiError(
                    422,
                    "UNPROCESSABLE_ENTITY",
                    "Validation failed for the request parameters.",
                    f"Only FAILED backfills can be retried; {backfill_id} is {backfill.status}.",
                )
            failed_days = sorted(
                {date.fromisoformat(e["transfer_run_date"]) for e in backfill.errors}, reverse=True
            )
            backfill.pending_days = failed_days
            backfill.runs_failed = 0
            backfill.errors = []
            backfill.status = "SCHEDULED"  # back in the queue: RUNNING at once when the team has a free slot
            self._record(backfill)
            self._dispatch(self.teams[team_id])
            return backfill

    def forget(self, team_id: int, backfill_id: int) -> None:
        """Drop a backfill so that the API answers 404 for it (as for very old ones)."""
        with self.lock:
            self.team(team_id).backfills.pop(backfill_id, None)

    # -- the state machine ------------------------------------------------------------------

    def _create_runs(self, backfill: Backfill) -> None:
        if backfill.status != "CREATED":
            return
        backfill.status = "SCHEDULED"
        backfill.runs_created = backfill.runs_total
        backfill.pending_days = [backfill.range_end - timedelta(days=i) for i in range(backfill.runs_total)]
        self._record(backfill)
        self.schedule(
            self._now + self._uniform(self.timing.pickup_after), self._dispatch, self.teams[backfill.team_id]
        )

    def _dispatch(self, team: Team) -> None:
        """Start queued backfills, oldest first, while the team has free slots."""
        running = sum(1 for b in team.backfills.values() if b.status == "RUNNING")
        queued = sorted(
            (b for b in team.backfills.values() if b.status == "SCHEDULED"),
            key=lambda b: (b.created_time, b.id),
        )
        for backfill in queued[: max(0, self.max_running - running)]:
            backfill.status = "RUNNING"
            backfill.start_time = backfill.start_time or self._now  # a retry keeps its first start
            self._record(backfill)
            self.schedule(self._now + self._uniform(self.timing.gap_between_runs), self._next_run, backfill)

    def _next_run(self, backfill: Backfill) -> None:
        if backfill.status != "RUNNING":
            return
        if backfill.pending_days:
            day = backfill.pending_days.pop(0)
            run = self._start_run(backfill.team_id, backfill.transfer_id, "Backfill", day, backfill.id)
            transfer = self.teams[backfill.team_id].transfers[backfill.transfer_id]
            seconds = self._run_seconds(transfer, self.rng)
            self.schedule(self._now + timedelta(seconds=seconds), self._run_done, backfill, day, run)
            return
        if backfill.runs_failed:
            backfill.status = "FAILED"
            for hook in self.failure_hooks:
                hook(backfill)
        else:
            backfill.status = "COMPLETED"
            backfill.end_time = self._now
        self._record(backfill)
        self._dispatch(self.teams[backfill.team_id])

    def _run_done(self, backfill: Backfill, day: date, run: TransferRun) -> None:
        transfer = self.teams[backfill.team_id].transfers[backfill.transfer_id]
        if self.rng.random() < transfer.failure_rate:
            backfill.runs_failed += 1
            error = random_error(self.rng, transfer.source)
            backfill.errors.append({"transfer_run_date": day.isoformat(), "error": error})
            self._end_run(run, error)
        else:
            backfill.runs_completed += 1
            self._end_run(run, None)
        self._record(backfill)
        if backfill.status == "RUNNING":
            self.schedule(self._now + self._uniform(self.timing.gap_between_runs), self._next_run, backfill)

    def _start_run(
        self, team_id: int, transfer_id: int, kind: str, day: date, backfill_id: int | None = None
    ) -> TransferRun:
        run = TransferRun(next(self._run_ids), team_id, transfer_id, kind, day, self._now, backfill_id)
        self.teams[team_id].runs[run.id] = run
        return run

    def _end_run(self, run: TransferRun, error: str | None) -> None:
        seconds = (self._now - run.created_time).total_seconds()
        queries = max(1, int(self.run_rng.uniform(1, 4)))
        rows = [int(self.run_rng.uniform(100, 20_000)) for _ in range(queries)]
        if error is not None:
            rows[-1] = 0
        run.queries = [
            {
                "duration": round(seconds / queries, 3),
                "status": "FAILED" if error is not None and n == queries - 1 else "COMPLETED",
                "rows": rows[n],
                "error_description": error if error is not None and n == queries - 1 else None,
            }
            for n in range(queries)
        ]
        run.status = "FAILED" if error is not None else "COMPLETED"
        run.message = error or ""
        run.total_rows = sum(rows)
        run.ended_time = self._now

    def _recurring(self, transfer: Transfer) -> None:
        """The transfer's daily run for yesterday's data; schedules tomorrow's."""
        run = self._start_run(
            transfer.team_id, transfer.id, "Recurring", self._now.date() - timedelta(days=1)
        )
        seconds = self._run_seconds(transfer, self.run_rng)
        failed = self.run_rng.random() < transfer.failure_rate
        error = random_error(self.run_rng, transfer.source) if failed else None
        self.schedule(self._now + timedelta(seconds=seconds), self._end_run, run, error)
        self.schedule(self._now + timedelta(days=1), self._recurring, transfer)

    def _record(self, backfill: Backfill) -> None:
        if self.ledger is not None:
            self.ledger.append(Change(self._now, backfill.team_id, backfill.to_api()))

    def _run_seconds(self, transfer: Transfer, rng: random.Random) -> float:
        """One run's duration: lognormal around the transfer's median, within the run bounds."""
        low, high = self.timing.run_bounds
        return min(high, max(low, rng.lognormvariate(0, self.timing.run_sigma) * transfer.median_run_seconds))

    def _uniform(self, bounds: tuple[float, float]) -> timedelta:
        return timedelta(seconds=self.rng.uniform(*bounds))

    def _purge_expired(self) -> None:
        if self.retention is None:
            return
        cutoff = self._now - self.retention
        for team in self.teams.values():
            expired = [
                b.id
                for b in team.backfills.values()
                if not b.is_incomplete and b.end_time is not None and b.end_time < cutoff
            ]
            for backfill_id in expired:
                del team.backfills[backfill_id]

"""A local stand-in for the Supermetrics backfill API: same paths, bodies, headers and errors.

Example:
    >>> with Simulator(seed=1, speed=0, workload=Workload()) as sim:   # manual clock
    ...     sim.clock.advance(3600)
    ...     requests.get(f"{sim.base_url}/teams/{DEFAULT_TEAM_ID}/backfills",
    ...                  headers={"Authorization": f"Bearer {sim.api_key}"}).json()
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

from .clock import SimClock
from .faults import FAULT_KINDS, Fault, FaultInjector, parse_fault
from .ratelimit import RateLimiter
from .server import READ_SCOPE, WRITE_SCOPE, Answered, ApiKey, SimulatorHTTPServer
from .workload import Workload
from .world import FINAL_STATUSES, INCOMPLETE_STATUSES, ApiError, Backfill, Change, Timing, World

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_START",
    "DEFAULT_TEAM_ID",
    "FAULT_KINDS",
    "FINAL_STATUSES",
    "INCOMPLETE_STATUSES",
    "READ_SCOPE",
    "WRITE_SCOPE",
    "Answered",
    "ApiError",
    "ApiKey",
    "Backfill",
    "Change",
    "Fault",
    "SimClock",
    "Simulator",
    "Timing",
    "Workload",
    "World",
    "parse_fault",
]

DEFAULT_TEAM_ID = 936506
DEFAULT_API_KEY = "sim-key"
DEFAULT_START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


class Simulator:
    """Clock + world + faults + HTTP server, started in a thread (`start()` or `with`).

    Args:
        seed: seeds the world, the workload and probabilistic faults.
        speed: simulated seconds per real second; 0 is a manual clock moved by `clock.advance()`.
        start: simulated time at which the clock starts.
        teams: team ids that exist (each empty unless a workload fills it).
        api_key: the bearer key with access to every team and both scopes.
        workload: simulated users creating, cancelling and retrying backfills, if any.
        warmup: simulated time run through before serving, so the world starts busy.
        max_running: backfills a team runs at once; the rest queue as SCHEDULED.
        rate_limit: requests per hour per key; enforced only when given.
        retention: finished backfills are forgotten (404) this long after they end.
        keep_ledger: record the truth, for tests: every backfill change (`world.ledger`) and every
            answer to a read of the API (`answers`). Memory grows with both; off by default.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        speed: float = 1.0,
        start: datetime | None = None,
        teams: Iterable[int] = (DEFAULT_TEAM_ID,),
        api_key: str = DEFAULT_API_KEY,
        workload: Workload | None = None,
        warmup: timedelta = timedelta(0),
        max_running: int = 3,
        timing: Timing | None = None,
        rate_limit: int | None = None,
        retention: timedelta | None = None,
        keep_ledger: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        start = start or DEFAULT_START
        self.clock = SimClock(start - warmup, speed=0)
        self.world = World(
            self.clock,
            seed=seed,
            max_running=max_running,
            timing=timing,
            retention=retention,
            keep_ledger=keep_ledger,
        )
        self.answers: list[Answered] | None = [] if keep_ledger else None
        self.faults = FaultInjector(seed)
        self.rate_limiter = RateLimiter(limit=rate_limit or 5000, enforce=rate_limit is not None)
        self.api_key = api_key
        self.keys: dict[str, ApiKey] = {api_key: ApiKey(api_key)}
        self.stopping = threading.Event()
        self.most_at_once = 0  # the most API calls it was answering at the same time
        self._at_once = 0
        self._at_once_lock = threading.Lock()
        team_ids = list(teams)
        for team_id in team_ids:
            self.world.add_team(team_id)
        if workload is not None:
            workload.install(self.world, team_ids)
        if warmup:
            self.clock.advance(warmup)
            self.world.sync()
        self.clock.set_speed(speed)
        self._address = (host, port)
        self._server: SimulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- auth -------------------------------------------------------------------------------

    def add_key(self, key: ApiKey) -> ApiKey:
        self.keys[key.key] = key
        return key

    def authenticate(self, authorization: str | None) -> ApiKey:
        if not authorization or not authorization.startswith("Bearer "):
            raise ApiError(
                401, "UNAUTHORIZED", "Authentication is required.", "Send Authorization: Bearer <api key>."
            )
        key = self.keys.get(authorization.removeprefix("Bearer ").strip())
        if key is None:
            raise ApiError(401, "API_KEY_INVALID", "Invalid API key", "Provided API key was invalid.")
        return key

    def authorize(self, key: ApiKey, team_id: int, scope: str) -> None:
        if scope not in key.scopes:
            raise ApiError(403, "ACCESS_DENIED", "Access Denied", f"The API key lacks the scope {scope}.")
        if (key.team_ids is not None and team_id not in key.team_ids) or team_id not in self.world.teams:
            raise ApiError(
                403, "ACCESS_DENIED", "Access Denied", "You do not have permission to perform this operation."
            )

    # -- serving ----------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The API root, like production's https://dts-api.supermetrics.com/v1."""
        if self._server is None:
            raise RuntimeError("the simulator is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @contextlib.contextmanager
    def answering(self) -> Iterator[None]:
        """Count an API call while it is answered (`most_at_once`: did calls overlap?)."""
        with self._at_once_lock:
            self._at_once += 1
            self.most_at_once = max(self.most_at_once, self._at_once)
        try:
            yield
        finally:
            with self._at_once_lock:
                self._at_once -= 1

    def start(self) -> Simulator:
        self.stopping.clear()
        self._server = SimulatorHTTPServer(self._address, self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="simulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()  # releases hung and slow requests
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def status(self) -> dict:
        with self.world.lock:
            self.world.sync()
            return {
                "now": self.clock.now().isoformat(),
                "speed": self.clock.speed,
                "teams": {
                    team_id: {
                        "transfers": sorted(team.transfers),
                        "backfills": len(team.backfills),
                        "incomplete": sum(b.is_incomplete for b in team.backfills.values()),
                    }
                    for team_id, team in self.world.teams.items()
                },
                "faults": [f.__dict__ for f in self.faults.rules],
                "rate_limit": {"limit": self.rate_limiter.limit, "enforced": self.rate_limiter.enforce},
            }

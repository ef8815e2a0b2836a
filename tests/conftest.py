"""Shared fixtures: a simulator on 127.0.0.1 with a manual clock, a small API client, and a
DuckDB file that `ingest` writes to."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
import requests

from pipelines.ingest import IngestResult, ingest, rebuild_models
from pipelines.simulator import Simulator, Timing
from pipelines.supermetrics import settings

# Quiet, offline, and quick to retry; no config from the developer's shell leaks in.
for _name in [n for n in os.environ if n.startswith(("SOURCES__", "DESTINATION__", "RUNTIME__"))]:
    del os.environ[_name]
os.environ.update(
    {
        "RUNTIME__DLTHUB_TELEMETRY": "false",
        "RUNTIME__LOG_LEVEL": "CRITICAL",
        "SOURCES__SUPERMETRICS__BACKOFF_FACTOR": "0",
        "SOURCES__SUPERMETRICS__MAX_ATTEMPTS": "2",
    }
)

ROOT = Path(__file__).resolve().parents[1]
# the root raw tables the ingest writes (the error report's child table aside)
RAW_TABLES = (
    settings.POLLS,
    settings.VERSIONS,
    settings.LISTING_EVENTS,
    settings.LOOKUPS,
    settings.TRANSFERS,
    settings.RUNS,
    settings.SWEEPS,
)
TEAM = 936506
OTHER_TEAM = 424242
START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
# Fixed timings make hand-computed expectations possible: runs created (SCHEDULED) 60 s after
# creation, picked up (RUNNING) 60 s later, 10 s before each run and after the last, and every
# run takes exactly the transfer's median. A lone backfill of n runs of 100 s created at T is
# RUNNING from T+120, its k-th run is done at T+120 + k*110, and it finishes at T+130 + n*110.
FIXED_TIMING = Timing(
    runs_created_after=(60, 60), pickup_after=(60, 60), gap_between_runs=(10, 10), run_sigma=0.0
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first (a stable sort): a long test started last would leave the other workers idle."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


class Api:
    """requests against the simulator, with the bearer key set."""

    def __init__(self, sim: Simulator, key: str | None = None) -> None:
        self.sim = sim
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {key or sim.api_key}"

    def url(self, path: str) -> str:
        return f"{self.sim.base_url}{path}"

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.session.get(self.url(path), timeout=kwargs.pop("timeout", 10), **kwargs)

    def post(self, path: str, body: object, **kwargs) -> requests.Response:
        return self.session.post(self.url(path), json=body, timeout=10, **kwargs)

    def patch(self, path: str, body: object, **kwargs) -> requests.Response:
        return self.session.patch(self.url(path), json=body, timeout=10, **kwargs)

    def listing(self, team: int = TEAM) -> list[dict]:
        response = self.get(f"/teams/{team}/backfills")
        assert response.status_code == 200, response.text
        return response.json()["data"]

    def create(self, transfer_id: int, start: date, end: date, team: int = TEAM) -> dict:
        response = self.post(
            f"/teams/{team}/transfers/{transfer_id}/backfills",
            {"range_start": start.isoformat(), "range_end": end.isoformat()},
        )
        assert response.status_code == 200, response.text
        return response.json()["data"]

    def backfill(self, backfill_id: int, team: int = TEAM) -> dict:
        response = self.get(f"/teams/{team}/backfills/{backfill_id}")
        assert response.status_code == 200, response.text
        return response.json()["data"]


@pytest.fixture
def sim() -> Iterator[Simulator]:
    """Two empty teams, a manual clock at START, fixed timings."""
    with Simulator(seed=7, speed=0, start=START, teams=(TEAM, OTHER_TEAM), timing=FIXED_TIMING) as simulator:
        yield simulator


@pytest.fixture
def api(sim: Simulator) -> Api:
    return Api(sim)


def add_transfer(
    sim: Simulator, failure_rate: float = 0.0, run_seconds: float = 100, team: int = TEAM
) -> int:
    return sim.world.add_transfer(team, failure_rate=failure_rate, median_run_seconds=run_seconds).id


def days_ago(n: int) -> date:
    return (START - timedelta(days=n)).date()


class Warehouse:
    """Runs the real ingest against the simulator into a DuckDB file, and queries that file.

    With `build_models = False` an ingest loads the raw tables only, and the models are built
    (`backfills models`) when a query next reads `analytics.`: the models are a function of the
    raw tables, so building once before reading equals building after every poll, for a third
    of the time.
    """

    def __init__(self, sim: Simulator, db_path: Path, team_ids: tuple[int, ...] = (TEAM,)) -> None:
        self.sim = sim
        self.db_path = db_path
        self.team_ids = list(team_ids)
        self.build_models = True
        self._unbuilt = False

    def ingest(self) -> IngestResult:
        self._unbuilt = not self.build_models
        return ingest(
            self.db_path, team_ids=self.team_ids, base_url=self.sim.base_url, build_models=self.build_models
        )

    def connect(self, sql: str = "analytics") -> duckdb.DuckDBPyConnection:
        """A read-only connection, the models built first if `sql` reads analytics and they are behind."""
        if self._unbuilt and "analytics" in sql:
            rebuild_models(self.db_path)
            self._unbuilt = False
        return duckdb.connect(str(self.db_path), read_only=True)

    def rows(self, sql: str, *params: object) -> list[tuple]:
        with self.connect(sql) as con:
            return con.execute(sql, list(params)).fetchall()

    def count(self, table: str) -> int:
        return self.rows(f"select count(*) from supermetrics.{table}")[0][0]


def poll_requests(result: IngestResult) -> int:
    """The run's requests of the list and the lookups: all of them but the sweep's (transfers,
    latest, runs), which tests of the sweep count on their own."""
    return result.report.requests - sum(team.sweep_requests for team in result.report.teams)


@pytest.fixture
def warehouse(sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Warehouse:
    monkeypatch.chdir(tmp_path)  # no .dlt/ of the repository's: config comes from env vars only
    monkeypatch.setenv("SOURCES__SUPERMETRICS__API_KEY", sim.api_key)
    return Warehouse(sim, tmp_path / "data" / "backfills.duckdb")

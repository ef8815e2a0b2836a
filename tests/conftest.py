"""Shared fixtures: a simulator on 127.0.0.1 with a manual clock, and a small API client."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import requests

from pipelines.simulator import Simulator, Timing

ROOT = Path(__file__).resolve().parents[1]
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

"""The simulated clock: manual, fast, and carried in the Date header."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import pytest
from conftest import START, TEAM, Api

from pipelines.simulator import SimClock, Simulator


def test_manual_clock_moves_only_when_advanced() -> None:
    clock = SimClock(START, speed=0)
    assert clock.now() == START and clock.now() == START
    assert clock.advance(90) == START + timedelta(seconds=90)
    assert clock.advance(timedelta(hours=1)) == START + timedelta(seconds=3690)
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_fast_clock_runs_speed_times_real_time() -> None:
    clock = SimClock(START, speed=600)
    real_before, sim_before = time.monotonic(), clock.now()
    while time.monotonic() - real_before < 0.06:  # a margin over the 0.05 s asserted below
        pass
    sim_after, real_after = clock.now(), time.monotonic()
    simulated = (sim_after - sim_before).total_seconds()
    assert simulated >= 600 * 0.05
    assert simulated <= 600 * (real_after - real_before) + 1e-3


def test_speed_can_change_without_jumps() -> None:
    clock = SimClock(START, speed=0)
    clock.advance(10)
    clock.set_speed(0)
    assert clock.now() == START + timedelta(seconds=10)
    with pytest.raises(ValueError):
        SimClock(START, speed=-1)
    with pytest.raises(ValueError):
        SimClock(datetime(2026, 1, 1), speed=1)  # naive times are refused


def test_date_header_carries_simulated_time(sim: Simulator, api: Api) -> None:
    sim.clock.advance(timedelta(days=3, seconds=7))
    response = api.get(f"/teams/{TEAM}/backfills")
    assert parsedate_to_datetime(response.headers["Date"]) == datetime(2026, 1, 8, 8, 0, 7, tzinfo=UTC)

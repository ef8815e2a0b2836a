"""State-machine invariants over long seeded workloads, observed through the API."""

from __future__ import annotations

from datetime import datetime, timedelta

from conftest import TEAM, Api
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.simulator import FINAL_STATUSES, INCOMPLETE_STATUSES, Simulator, Workload

ALLOWED = {  # status -> statuses it may be seen in next (seeing the same again is always fine)
    "CREATED": {"SCHEDULED", "RUNNING", "FAILED", "COMPLETED", "CANCELLED"},
    "SCHEDULED": {"RUNNING", "FAILED", "COMPLETED", "CANCELLED"},
    "RUNNING": {"FAILED", "SCHEDULED", "COMPLETED", "CANCELLED"},  # SCHEDULED: failed, then retried
    "FAILED": {"SCHEDULED", "RUNNING", "COMPLETED", "CANCELLED"},  # a retry, possibly finished between looks
    "COMPLETED": set(),
    "CANCELLED": set(),
}


def check_backfill(b: dict, now: datetime) -> None:
    assert 0 <= b["transfer_runs_created"] <= b["transfer_runs_total"]
    assert b["transfer_runs_completed"] + b["transfer_runs_failed"] <= b["transfer_runs_created"]
    assert len(b["error_report"]) == b["transfer_runs_failed"]
    assert b["status"] in INCOMPLETE_STATUSES + FINAL_STATUSES
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    assert parse(b["created_time"]) <= now
    if b["status"] == "CREATED" or (b["status"] == "SCHEDULED" and b["start_time"] is None):  # not retried
        assert b["start_time"] is None and b["transfer_runs_completed"] + b["transfer_runs_failed"] == 0
    if b["status"] in ("RUNNING", "FAILED", "COMPLETED"):
        assert parse(b["created_time"]) <= parse(b["start_time"])
    if b["status"] == "COMPLETED":
        assert b["transfer_runs_completed"] == b["transfer_runs_total"] and b["transfer_runs_failed"] == 0
        assert parse(b["start_time"]) <= parse(b["end_time"]) <= now
    if b["status"] == "FAILED":
        assert b["transfer_runs_failed"] > 0 and b["end_time"] is None
        assert b["transfer_runs_completed"] + b["transfer_runs_failed"] == b["transfer_runs_total"]
    if b["status"] == "CANCELLED":
        assert b["end_time"] == b["removed_time"] and b["removed_user_id"]
    dates = [e["transfer_run_date"] for e in b["error_report"]]
    assert all(b["range_start_date"] <= d <= b["range_end_date"] for d in dates)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), step_minutes=st.sampled_from([1, 5, 17, 60]))
def test_invariants_hold_over_long_seeded_runs(seed: int, step_minutes: int) -> None:
    workload = Workload(transfers_per_team=6, backfills_per_day=30, cancel_probability=0.2)
    with Simulator(seed=seed, speed=0, workload=workload, max_running=2) as sim:
        api = Api(sim)
        seen: dict[int, str] = {}
        for _ in range(150):  # 150 looks: 15 hours to 6 days of simulated time
            sim.clock.advance(timedelta(minutes=step_minutes * 6))
            now = sim.clock.now()
            listed = api.listing()
            assert len(listed) <= 100
            keys = [(b["created_time"], b["transfer_backfill_id"]) for b in listed]
            assert keys == sorted(keys, reverse=True), "newest first"
            assert {b["status"] for b in listed} <= set(INCOMPLETE_STATUSES)
            running = sum(b["status"] == "RUNNING" for b in listed)
            assert running <= 2
            for b in listed:
                check_backfill(b, now)
                previous = seen.get(b["transfer_backfill_id"])
                assert previous is None or b["status"] == previous or b["status"] in ALLOWED[previous]
                seen[b["transfer_backfill_id"]] = b["status"]
            for backfill_id in set(seen) - {b["transfer_backfill_id"] for b in listed}:
                final = api.backfill(backfill_id)
                check_backfill(final, now)
                assert final["status"] in FINAL_STATUSES, "only a finished backfill leaves the list"
                seen.pop(backfill_id)
        # 15 hours of 30 a day (the shortest run) make 5 to 18 backfills over 40 seeds: any is work
        assert sum(len(t.backfills) for t in sim.world.teams.values()) > 0, "the workload produced work"


def test_same_seed_same_world() -> None:
    def run(seed: int) -> list[dict]:
        with Simulator(seed=seed, speed=0, workload=Workload(), warmup=timedelta(days=2)) as sim:
            return [b.to_api() for b in sim.world.teams[TEAM].backfills.values()]

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_workload_shows_every_kind_of_life() -> None:
    with Simulator(seed=11, speed=0, workload=Workload(), warmup=timedelta(days=4)) as sim:
        backfills = list(sim.world.teams[TEAM].backfills.values())
    statuses = {b.status for b in backfills}
    assert {"COMPLETED", "CANCELLED", "FAILED"} <= statuses | {"FAILED" for b in backfills if b.errors}
    assert any(b.status == "COMPLETED" and b.runs_total > 1 for b in backfills)

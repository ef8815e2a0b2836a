"""A seeded workload: users creating, cancelling and retrying backfills at realistic rates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from .world import ApiError, Backfill, World

RANGE_DAYS = (7, 14, 28, 30, 31, 60, 90)
USER_IDS = (789, 790, 791, 792)


@dataclass(frozen=True)
class Workload:
    """What the simulated users do, per team.

    Backfill creations arrive as a Poisson process of `backfills_per_day`; each picks a random
    transfer and a date range of one to three months ending up to 60 days ago. A created backfill
    is cancelled with `cancel_probability` at a random time within six hours; a FAILED one is
    retried with `retry_probability` within two hours, else left FAILED until someone cancels it.
    """

    transfers_per_team: int = 12
    backfills_per_day: float = 16.0
    cancel_probability: float = 0.08
    retry_probability: float = 0.6

    def install(self, world: World, team_ids: list[int]) -> None:
        with world.lock:
            for team_id in team_ids:
                world.add_team(team_id, transfers=self.transfers_per_team)
                self._schedule_next_creation(world, team_id)
            teams = set(team_ids)

            def on_failure(backfill: Backfill) -> None:  # several workloads may share one world
                if backfill.team_id in teams:
                    self._maybe_retry(world, backfill)

            world.failure_hooks.append(on_failure)

    def _schedule_next_creation(self, world: World, team_id: int) -> None:
        mean_gap = 86_400 / self.backfills_per_day
        world.schedule(
            world.now + timedelta(seconds=world.rng.expovariate(1 / mean_gap)),
            self._create_one,
            world,
            team_id,
        )

    def _create_one(self, world: World, team_id: int) -> None:
        rng = world.rng
        transfer_id = rng.choice(sorted(world.teams[team_id].transfers))
        days = rng.choice(RANGE_DAYS)
        range_end = world.now.date() - timedelta(days=rng.randint(1, 60))
        try:
            backfill = world.create(
                team_id, transfer_id, range_end - timedelta(days=days - 1), range_end, rng.choice(USER_IDS)
            )
        except ApiError:
            backfill = None  # overlaps an active backfill of that transfer: the user gives up
        if backfill is not None and rng.random() < self.cancel_probability:
            world.schedule(
                world.now + timedelta(seconds=rng.uniform(60, 6 * 3600)), self._cancel, world, backfill
            )
        self._schedule_next_creation(world, team_id)

    def _cancel(self, world: World, backfill: Backfill) -> None:
        if backfill.is_incomplete:
            world.cancel(backfill.team_id, backfill.id, world.rng.choice(USER_IDS))

    def _maybe_retry(self, world: World, backfill: Backfill) -> None:
        rng = world.rng
        if rng.random() < self.retry_probability:
            world.schedule(
                world.now + timedelta(seconds=rng.uniform(300, 7200)), self._retry, world, backfill
            )
        elif rng.random() < 0.5:
            world.schedule(
                world.now + timedelta(seconds=rng.uniform(3600, 12 * 3600)), self._cancel, world, backfill
            )

    def _retry(self, world: World, backfill: Backfill) -> None:
        if backfill.status == "FAILED":
            world.retry(backfill.team_id, backfill.id)

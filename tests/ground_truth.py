"""What really happened in the simulator, and what the API let the monitor see of it.

Built from the simulator's ledger (every change of every backfill, with its exact time) and its
log of answers (which reads were answered, when, and with which backfills listed). Two views:

- the *truth*: each backfill's state at any moment, its status stretches, its errors and runs;
- the *sightings*: the moments the API showed a backfill's state (a valid list answer that
  listed it, a lookup by id answered 200). What no sighting showed cannot be known.

The ground-truth test compares every analytics table with the truth; a difference is allowed
only when it falls into one of the `TOLERANCES`, each decided here from the sightings.
"""

from __future__ import annotations

import bisect
import functools
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from pipelines.simulator import Answered, Change
from pipelines.simulator.world import TransferRun

FINAL = ("COMPLETED", "CANCELLED")
VALID_FAULTS = (None, "slow", "extra_field")  # answers that stay valid despite the injected fault

# Differences the API cannot avoid. Every tolerated difference is counted under one of these.
TOLERANCES = {
    "never_listed": "created and finished between two successful polls (or before monitoring began)",
    "between_sightings": "a time known only to within the gap between two sightings of the backfill",
    "unseen_stretch": "a status that began and ended between two sightings",
    "reset_unseen": "failures (and their errors) that a retry reset before any sighting showed them",
    "after_last_sighting": "a change after the backfill was last shown (hidden by the 100 cap, or forgotten)",
    "forgotten": "the API forgot the backfill (404) before a lookup confirmed its final state, or "
    "before a recheck saw what changed after its last sighting",
    "stale_team": "the team's latest polls failed or were skipped (a run stops at an outage)",
    "capped_list": "over 100 incomplete: the list hides the oldest, the running ones among them",
    "day_boundary": "runs done before midnight and first seen after it count on the later day",
    "after_last_sweep": "a transfer run created or ended after its transfer's last sweep of runs",
}


@dataclass
class Sighting:
    at: datetime
    state: dict
    by: str  # list or lookup


@dataclass
class BackfillTruth:
    id: int
    team_id: int
    changes: list[Change] = field(default_factory=list)
    sightings: list[Sighting] = field(default_factory=list)
    lookups: list[Answered] = field(default_factory=list)  # answered lookups (200 or 404)

    def state_at(self, at: datetime) -> dict | None:
        index = bisect.bisect_right(self.change_times, at)
        return self.changes[index - 1].state if index else None

    @functools.cached_property
    def change_times(self) -> list[datetime]:  # asked for after the ledger is read in whole
        return [c.at for c in self.changes]

    @property
    def final(self) -> dict:
        return self.changes[-1].state

    @property
    def first(self) -> dict:
        return self.changes[0].state

    def stretches(self) -> list[tuple[str, datetime, datetime | None]]:
        """(status, from, to) of each contiguous status, exactly as it happened."""
        out: list[list] = []
        for change in self.changes:
            status = change.state["status"]
            if not out or out[-1][0] != status:
                if out:
                    out[-1][2] = change.at
                out.append([status, change.at, None])
        return [tuple(s) for s in out]

    def first_sighting_from(self, at: datetime) -> Sighting | None:
        return next((s for s in self.sightings if s.at >= at), None)

    def attempts(self) -> list[tuple[int, datetime, datetime | None]]:
        """(failed runs, since, until) per attempt: the counter's final value in each attempt and
        the span in which it showed that value (until the retry that reset it)."""
        out: list[list] = []
        previous = None
        for change in self.changes:
            state = change.state
            failed = state["transfer_runs_failed"]
            new_attempt = previous is not None and failed < previous["transfer_runs_failed"]
            if not out or new_attempt:
                if out:
                    out[-1][2] = change.at
                out.append([state["transfer_runs_failed"], change.at, None])
            elif state["transfer_runs_failed"] != out[-1][0]:
                out[-1][0], out[-1][1] = state["transfer_runs_failed"], change.at
            previous = state
        return [tuple(a) for a in out]

    def errors(self) -> dict[tuple[str, str], datetime]:
        """Every (transfer_run_date, error) it ever reported, with when it first did."""
        seen: dict[tuple[str, str], datetime] = {}
        for change in self.changes:
            for entry in change.state["error_report"]:
                seen.setdefault((entry["transfer_run_date"], entry["error"]), change.at)
        return seen

    def runs_done(self) -> list[tuple[datetime, str]]:
        """(when, 'completed' or 'failed') of every transfer run, across attempts."""
        out, previous = [], None
        for change in self.changes:
            state = change.state
            if previous is not None:
                if state["transfer_runs_completed"] > previous["transfer_runs_completed"]:
                    out.append((change.at, "completed"))
                if state["transfer_runs_failed"] > previous["transfer_runs_failed"]:
                    out.append((change.at, "failed"))
            previous = state
        return out


@dataclass
class ListAnswer:
    at: datetime
    team_id: int
    listed: tuple[int, ...]


class Truth:
    """The ledger and the answers, per backfill and per team."""

    def __init__(self, ledger: list[Change], answers: list[Answered], runs: list[TransferRun] = ()) -> None:
        self.backfills: dict[int, BackfillTruth] = {}
        self.answers = answers
        self.runs = [r for r in runs if r.type == "Backfill"]  # the only type the monitor stores
        # (team, transfer) -> times of the runs endpoint's valid answers: when the monitor saw runs
        self.run_sweeps: dict[tuple[int, int], list[datetime]] = defaultdict(list)
        for answer in answers:
            if answer.endpoint == "runs" and answer.status == 200 and answer.fault in VALID_FAULTS:
                self.run_sweeps[answer.ids[0], answer.ids[1]].append(answer.at)
        for change in ledger:
            backfill_id = change.state["transfer_backfill_id"]
            truth = self.backfills.setdefault(backfill_id, BackfillTruth(backfill_id, change.team_id))
            truth.changes.append(change)
        # A poll is the last list answer of its team at its moment (a retried 503 comes first).
        last_list: dict[tuple[int, datetime], Answered] = {}
        for answer in answers:
            if answer.endpoint == "list":
                last_list[(answer.ids[0], answer.at)] = answer
        self.polls = sorted(last_list.values(), key=lambda a: (a.at, a.ids[0]))
        self.ok_polls: dict[int, list[ListAnswer]] = defaultdict(list)
        for answer in self.polls:
            if answer.status == 200 and answer.fault in VALID_FAULTS:
                self.ok_polls[answer.ids[0]].append(ListAnswer(answer.at, answer.ids[0], answer.listed))
                for backfill_id in answer.listed:
                    truth = self.backfills[backfill_id]
                    truth.sightings.append(Sighting(answer.at, truth.state_at(answer.at), "list"))
        for answer in answers:
            answered = answer.fault in VALID_FAULTS and answer.status in (200, 404)
            if answer.endpoint != "get" or not answered:
                continue
            truth = self.backfills[answer.ids[1]]
            truth.lookups.append(answer)
            if answer.status == 200:
                truth.sightings.append(Sighting(answer.at, truth.state_at(answer.at), "lookup"))
        for truth in self.backfills.values():
            truth.sightings.sort(key=lambda s: (s.at, s.by != "list"))
        self.end = max(a.at for a in self.polls)

    def lookup_tries(self, backfill_id: int) -> list[Answered]:
        """Every answer to a lookup of the backfill, failed ones included."""
        return [a for a in self.answers if a.endpoint == "get" and a.ids[1] == backfill_id]

    def listed_ever(self) -> set[int]:
        return {b for answers in self.ok_polls.values() for a in answers for b in a.listed}

    def last_ok_poll(self, team_id: int) -> datetime:
        return self.ok_polls[team_id][-1].at

    def listing_span(self, backfill_id: int) -> tuple[datetime, datetime | None, datetime | None]:
        """(first listed, last listed, vanished: the first ok poll after the last listing)."""
        truth = self.backfills[backfill_id]
        times = [a.at for a in self.ok_polls[truth.team_id] if backfill_id in a.listed]
        after = [a.at for a in self.ok_polls[truth.team_id] if a.at > times[-1]]
        return times[0], times[-1], (after[0] if after else None)


@dataclass
class Tally:
    """Per table: values that match the truth, differences tolerated per class, unexplained ones."""

    matched: int = 0
    tolerated: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    unexplained: list[str] = field(default_factory=list)

    def match(self) -> None:
        self.matched += 1

    def tolerate(self, tolerance: str, count: int = 1) -> None:
        assert tolerance in TOLERANCES, tolerance
        self.tolerated[tolerance] += count

    def explain(self, ok: bool, tolerance: str | None, what: str) -> None:
        """A differing value: tolerated under `tolerance` when `ok`, else unexplained."""
        if ok and tolerance:
            self.tolerate(tolerance)
        else:
            self.unexplained.append(what)

    def line(self, table: str) -> str:
        tolerated = ", ".join(f"{k} {v}" for k, v in sorted(self.tolerated.items())) or "none"
        return (
            f"{table:<34} matched {self.matched:>6}  tolerated {sum(self.tolerated.values()):>5} "
            f"({tolerated})  unexplained {len(self.unexplained)}"
        )


@dataclass
class Seen:
    """What the sightings of one backfill show: what the models should say about it."""

    truth: BackfillTruth
    first_listed: datetime
    last_listed: datetime
    vanished: datetime | None
    status: str  # the state's status, or UNKNOWN
    state: dict  # the last sighting's state
    unknown_since: datetime | None
    last_seen: datetime

    @classmethod
    def of(cls, truth: BackfillTruth, listing: tuple[datetime, datetime, datetime | None]) -> Seen:
        first_listed, last_listed, vanished = listing
        state = truth.sightings[-1].state
        status, unknown_since = state["status"], None
        if vanished is not None and status not in FINAL:
            answered = [a for a in truth.lookups if a.at >= vanished]
            found = [a for a in answered if a.status == 200]
            if not found:
                status, unknown_since = "UNKNOWN", vanished
            else:
                forgotten = [a for a in answered if a.status == 404 and a.at > found[-1].at]
                if forgotten:
                    status, unknown_since = "UNKNOWN", forgotten[0].at
        lookups_200 = [a.at for a in truth.lookups if a.status == 200]
        last_seen = max([last_listed, *lookups_200])
        return cls(truth, first_listed, last_listed, vanished, status, state, unknown_since, last_seen)

    def stretches(self) -> list[tuple[str, datetime]]:
        """(status, from) as the models build them from the sightings."""
        out: list[tuple[str, datetime]] = []
        incomplete_lookup_since_vanished = False
        for sighting in self.truth.sightings:
            status, at = sighting.state["status"], sighting.at
            if self.vanished is not None and sighting.at >= self.vanished and sighting.by == "lookup":
                if status in FINAL and not incomplete_lookup_since_vanished:
                    at = self.vanished  # it left the list because it finished
                incomplete_lookup_since_vanished |= status not in FINAL
            if not out or out[-1][0] != status:
                out.append((status, at))
        if self.status == "UNKNOWN":
            out.append(("UNKNOWN", self.unknown_since))
        return out

    def failed_deltas(self) -> list[tuple[datetime, int]]:
        """(sighting, failed runs it revealed): a new attempt (FAILED back to the queue or to
        running, or the counter dropped) counts its failures from zero."""
        out, previous = [], None
        for sighting in self.truth.sightings:
            state = sighting.state
            failed = state["transfer_runs_failed"]
            new_attempt = previous is not None and (
                (previous["status"] == "FAILED" and state["status"] in ("CREATED", "SCHEDULED", "RUNNING"))
                or failed < previous["transfer_runs_failed"]
            )
            if previous is None or new_attempt:
                delta = failed
            else:
                delta = max(failed - previous["transfer_runs_failed"], 0)
            if delta:
                out.append((sighting.at, delta))
            previous = state
        return out

    def completed_deltas(self) -> list[tuple[datetime, int]]:
        out, previous = [], 0
        for sighting in self.truth.sightings:
            completed = sighting.state["transfer_runs_completed"]
            if completed > previous:
                out.append((sighting.at, completed - previous))
            previous = max(previous, completed)
        return out

    def errors(self) -> dict[tuple[str, str], tuple[datetime, datetime]]:
        """(transfer_run_date, error) -> (first, last sighting that showed it)."""
        out: dict[tuple[str, str], tuple[datetime, datetime]] = {}
        for sighting in self.truth.sightings:
            for entry in sighting.state["error_report"]:
                key = (entry["transfer_run_date"], entry["error"])
                out[key] = (out[key][0] if key in out else sighting.at, sighting.at)
        return out

    def last_progress(self) -> datetime:
        """The last sighting whose status or runs done differed from the previous sighting's."""
        last, previous = self.truth.sightings[0].at, None
        for sighting in self.truth.sightings:
            state = sighting.state
            done = state["transfer_runs_completed"] + state["transfer_runs_failed"]
            if previous is not None and (state["status"], done) != previous:
                last = sighting.at
            previous = (state["status"], done)
        return last

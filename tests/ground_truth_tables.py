"""Each analytics table against the truth, value by value.

For every value: the model must say exactly what the sightings show (else "unexplained"); where
that differs from what really happened, the difference is tolerated under the class that says
why the API could not show it (`ground_truth.TOLERANCES`), and otherwise it is unexplained too.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
from ground_truth import FINAL, BackfillTruth, Seen, Tally, Truth

Row = dict[str, object]
CLOSE = 1e-9


def rows(con: duckdb.DuckDBPyConnection, table: str) -> list[Row]:
    cursor = con.execute(f"select * from analytics.{table}")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


def same(a: object, b: object) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and abs(float(a) - float(b)) <= CLOSE
    return a == b


def ts(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


def seconds(start: datetime | None, end: datetime | None) -> int | None:
    return None if start is None or end is None else int((end - start).total_seconds())


def ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def p95(values: list) -> float | None:
    """The 95th percentile, interpolated linearly between the closest ranks (DuckDB's quantile_cont)."""
    if len(values) < 2:
        return values[0] if values else None
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def last_error(group: list[Seen], seen: bool) -> str | None:
    """The error first seen (or, truly, first reported) most recently; ties go to the latest run
    date, then the error text."""
    candidates = [
        (first, day, error)
        for s in group
        for (day, error), first in (
            {k: span[0] for k, span in s.errors().items()} if seen else s.truth.errors()
        ).items()
    ]
    return max(candidates)[2] if candidates else None


class Audit:
    """The truth, what each backfill's sightings show, and one tally per table."""

    def __init__(self, truth: Truth, db: Path, max_running: int) -> None:
        self.truth, self.max_running = truth, max_running
        self.seen = {
            b: Seen.of(truth.backfills[b], truth.listing_span(b)) for b in sorted(truth.listed_ever())
        }
        self.tallies: dict[str, Tally] = defaultdict(Tally)
        with duckdb.connect(str(db), read_only=True) as con:
            self.tables = {
                name: rows(con, name)
                for name in (
                    "polls",
                    "freshness",
                    "backfill_progress",
                    "backfills",
                    "backfill_status_history",
                    "backfill_errors",
                    "error_summary",
                    "daily_activity",
                    "transfer_failure_rates",
                    "backfill_runs",
                )
            }

    def run(self) -> dict[str, Tally]:
        self.polls()
        self.freshness()
        self.progress()
        self.backfills()
        self.status_history()
        self.errors()
        self.error_summary()
        self.daily_activity()
        self.transfer_failure_rates()
        self.backfill_runs()
        return dict(self.tallies)

    # -- helpers ----------------------------------------------------------------------------

    def check(
        self,
        table: str,
        key: object,
        column: str,
        model: object,
        seen: object,
        truth: object,
        tolerance: str | None,
    ) -> None:
        """The model must equal what the sightings show; that may differ from the truth only
        under `tolerance`."""
        tally = self.tallies[table]
        if not same(model, seen):
            tally.unexplained.append(f"{key} {column}: model {model!r}, sightings show {seen!r}")
        elif same(seen, truth):
            tally.match()
        else:
            tally.explain(tolerance is not None, tolerance, f"{key} {column}: {seen!r}, truth {truth!r}")

    def keyed(self, table: str, *key: str) -> dict[tuple, Row]:
        out = {}
        for row in self.tables[table]:
            k = tuple(row[c] for c in key)
            if k in out:
                self.tallies[table].unexplained.append(f"{k}: two rows")
            out[k] = row
        return out

    def missing_or_extra(self, table: str, model: dict, expected: dict) -> None:
        for k in sorted(set(model) ^ set(expected), key=str):
            where = "missing" if k in expected else "not expected"
            self.tallies[table].unexplained.append(f"{k}: row {where}")

    def unseen(self, seen: Seen) -> str | None:
        """Why a change after the backfill's last sighting is allowed to be missing, or None:
        the monitor must confirm how a backfill ended unless the API forgot it (404), it is hidden
        behind the 100 cap (rechecked in turn, max_rechecks a run), its lookup failed in the last
        run, or its team's latest polls failed. A CANCELLED backfill's run in flight is no excuse:
        it is followed until the runs endpoint says that its runs ended."""
        backfill = seen.truth
        if seen.status == "UNKNOWN" and any(a.status == 404 for a in backfill.lookups):
            return "forgotten"
        last_seen = max((s.at for s in backfill.sightings), default=None)
        gone = min(
            (a.at for a in backfill.lookups if a.status == 404 and a.at > (last_seen or a.at)), default=None
        )
        if last_seen is not None and gone is not None:
            # e.g. CANCELLED with a run in flight, its recheck missed (a failed poll), then 404. Not
            # when a successful poll of its team came between: its lookup was due then
            chances = [p.at for p in self.truth.ok_polls[backfill.team_id] if last_seen < p.at < gone]
            if not chances or seen.status not in FINAL:
                return "forgotten"
        if self.truth.last_ok_poll(backfill.team_id) < self.truth.end:
            return "stale_team"
        hidden = seen.vanished is not None and seen.status not in FINAL
        last_try = max((a for a in self.truth.lookup_tries(backfill.id)), key=lambda a: a.at, default=None)
        failed_last = last_try is not None and last_try.status >= 500
        if hidden or failed_last:
            return "after_last_sighting"
        return None

    # -- tables -----------------------------------------------------------------------------

    def polls(self) -> None:
        model = self.keyed("polls", "team_id", "polled_at")
        expected = {(a.ids[0], a.at): a for a in self.truth.polls}
        self.missing_or_extra("polls", model, expected)
        previous: dict[int, set[int]] = {}
        for key, answer in sorted(expected.items(), key=lambda kv: kv[0][1]):
            if key not in model:
                continue
            row, ok = model[key], answer.status == 200 and answer.fault is None
            listed = set(answer.listed)
            left = len(previous[key[0]] - listed) if ok and key[0] in previous else None
            for column, value in (
                ("outcome", "ok" if ok else "failed"),
                ("http_status", answer.status),
                ("backfills_listed", len(answer.listed) if ok else None),
                ("possibly_truncated", ok and len(answer.listed) == 100),
            ):
                self.check("polls", key, column, row[column], value, value, None)
            if left is not None:
                self.check("polls", key, "backfills_left", row["backfills_left"], left, left, None)
            if ok:
                previous[key[0]] = listed

    def freshness(self) -> None:
        model = self.keyed("freshness", "team_id")
        for team_id, polls in sorted(self.truth.ok_polls.items()):
            row = model.get((team_id,))
            if row is None:
                self.tallies["freshness"].unexplained.append(f"team {team_id}: row missing")
                continue
            team_polls = [a for a in self.truth.polls if a.ids[0] == team_id]
            last_ok = polls[-1].at
            failed_since = sum(1 for a in team_polls if a.at > last_ok)
            for column, value in (
                ("last_polled_at", team_polls[-1].at),
                ("last_ok_polled_at", last_ok),
                ("failed_polls_since_ok", failed_since),
            ):
                self.check("freshness", team_id, column, row[column], value, value, None)

    def progress(self) -> None:
        model = self.keyed("backfill_progress", "polled_at", "transfer_backfill_id")
        expected = {}
        for polls in self.truth.ok_polls.values():
            for answer in polls:
                for backfill_id in answer.listed:
                    expected[(answer.at, backfill_id)] = self.truth.backfills[backfill_id].state_at(answer.at)
        self.missing_or_extra("backfill_progress", model, expected)
        for key, state in expected.items():
            row = model.get(key)
            if row is None:
                continue
            for column in (
                "status",
                "transfer_runs_total",
                "transfer_runs_created",
                "transfer_runs_completed",
                "transfer_runs_failed",
            ):
                self.check("backfill_progress", key, column, row[column], state[column], state[column], None)
            errors = len(state["error_report"])
            self.check("backfill_progress", key, "error_count", row["error_count"], errors, errors, None)

    def backfills(self) -> None:
        model = self.keyed("backfills", "transfer_backfill_id")
        never = set(self.truth.backfills) - set(self.seen)
        if never:
            self.tallies["backfills"].tolerate("never_listed", len(never))
        self.missing_or_extra("backfills", model, {(b,): s for b, s in self.seen.items()})
        for (backfill_id,), row in sorted(model.items()):
            seen = self.seen.get(backfill_id)
            if seen is None:
                continue
            backfill, state, final = seen.truth, seen.state, seen.truth.final
            key = f"backfill {backfill_id}"
            late = self.unseen(seen)
            for column in ("transfer_id", "created_user_id"):
                self.check("backfills", key, column, row[column], state[column], final[column], None)
            for column in ("range_start_date", "range_end_date"):
                self.check("backfills", key, column, str(row[column]), state[column], final[column], None)
            self.check(
                "backfills",
                key,
                "created_time",
                row["created_time"],
                ts(state["created_time"]),
                ts(final["created_time"]),
                None,
            )
            self.check("backfills", key, "status", row["status"], seen.status, final["status"], late)
            for column in ("start_time", "end_time", "removed_time"):
                self.check(
                    "backfills", key, column, row[column], ts(state.get(column)), ts(final.get(column)), late
                )
            for column in (
                "removed_user_id",
                "transfer_runs_created",
                "transfer_runs_completed",
                "transfer_runs_failed",
            ):
                self.check("backfills", key, column, row[column], state.get(column), final.get(column), late)
            first_listed, _, vanished = self.truth.listing_span(backfill_id)
            for column, value in (
                ("first_seen_at", first_listed),
                ("last_seen_at", seen.last_seen),
                ("vanished_at", vanished),
            ):
                self.check("backfills", key, column, row[column], value, value, None)
            finished = self._finished_at(seen.status, state)
            true_finished = self._finished_at(final["status"], final)
            self.check("backfills", key, "finished_at", row["finished_at"], finished, true_finished, late)
            start = ts(state["start_time"])
            self.check(
                "backfills",
                key,
                "queue_seconds",
                row["queue_seconds"],
                seconds(ts(state["created_time"]), start),
                seconds(ts(final["created_time"]), ts(final["start_time"])),
                late,
            )
            run, true_run = self._run_seconds(seen), self._true_run_seconds(backfill)
            failed_late = (
                "between_sightings" if seen.status == "FAILED" and final["status"] == "FAILED" else late
            )
            self.check("backfills", key, "run_seconds", row["run_seconds"], run, true_run, failed_late)
            done = state["transfer_runs_completed"] + state["transfer_runs_failed"]
            true_done = final["transfer_runs_completed"] + final["transfer_runs_failed"]
            self.check(
                "backfills",
                key,
                "progress_pct",
                float(row["progress_pct"]),
                round(100 * done / state["transfer_runs_total"], 2),
                round(100 * true_done / final["transfer_runs_total"], 2),
                late,
            )
            all_failed = sum(d for _, d in seen.failed_deltas())
            true_failed = sum(a[0] for a in backfill.attempts())
            reset = self._failures_lost(seen)
            self.check(
                "backfills",
                key,
                "runs_failed_all_attempts",
                row["runs_failed_all_attempts"],
                all_failed,
                true_failed,
                reset,
            )
            self.check(
                "backfills",
                key,
                "failure_rate",
                row["failure_rate"],
                ratio(all_failed, state["transfer_runs_completed"] + all_failed),
                ratio(true_failed, final["transfer_runs_completed"] + true_failed),
                reset,
            )
            self.check(
                "backfills",
                key,
                "failure_rate_current_attempt",
                row["failure_rate_current_attempt"],
                ratio(state["transfer_runs_failed"], done),
                ratio(final["transfer_runs_failed"], true_done),
                late,
            )
            self.check(
                "backfills",
                key,
                "error_count",
                row["error_count"],
                len(seen.errors()),
                len(backfill.errors()),
                reset,
            )
            last_progress, true_progress = seen.last_progress(), self._true_last_progress(backfill)
            self.check(
                "backfills",
                key,
                "last_progress_at",
                row["last_progress_at"],
                last_progress,
                true_progress,
                "between_sightings" if backfill.first_sighting_from(true_progress) else late,
            )
            waiting, truly, why = self._waiting_for_slot(seen)
            self.check(
                "backfills", key, "is_waiting_for_slot", row["is_waiting_for_slot"], waiting, truly, why
            )
            # The simulator never stalls a backfill: it waits for a slot, or a run is under way.
            # The sightings call it stalled when they show it unchanged for over two hours.
            stalled = (
                seen.status in ("CREATED", "SCHEDULED", "RUNNING")
                and not waiting
                and (seen.last_seen - last_progress).total_seconds() > 2 * 3600
            )
            self.check("backfills", key, "is_stalled", row["is_stalled"], stalled, False, None)

    @staticmethod
    def _finished_at(status: str, state: dict) -> datetime | None:
        if status not in FINAL:
            return None
        return ts(state["end_time"]) or ts(state.get("removed_time"))

    def _run_seconds(self, seen: Seen) -> int | None:
        state = seen.state
        start = ts(state["start_time"])
        if state["end_time"] is not None:
            return seconds(start, ts(state["end_time"]))
        if seen.status == "FAILED":
            return seconds(start, seen.stretches()[-1][1])
        if seen.status not in (*FINAL, "UNKNOWN"):
            return seconds(start, self.truth.last_ok_poll(seen.truth.team_id))
        return None

    def _true_run_seconds(self, backfill: BackfillTruth) -> int | None:
        final = backfill.final
        start = ts(final["start_time"])
        if final["end_time"] is not None:
            return seconds(start, ts(final["end_time"]))
        if final["status"] == "FAILED":
            return seconds(start, backfill.stretches()[-1][1])
        if final["status"] not in FINAL:
            return seconds(start, self.truth.last_ok_poll(backfill.team_id))
        return None

    @staticmethod
    def _true_last_progress(backfill: BackfillTruth) -> datetime:
        last, previous = backfill.changes[0].at, None
        for change in backfill.changes:
            state = change.state
            now = (state["status"], state["transfer_runs_completed"] + state["transfer_runs_failed"])
            if previous is not None and now != previous:
                last = change.at
            previous = now
        return last

    def _failures_lost(self, seen: Seen) -> str | None:
        """Which class explains failures the sightings missed: an attempt no sighting showed at
        its final count before a retry reset it, or failures after the last sighting."""
        backfill = seen.truth
        for failed, since, until in backfill.attempts()[:-1]:
            if failed and not any(since <= s.at < until for s in backfill.sightings):
                return "reset_unseen"
        return self.unseen(seen)

    def _waiting_for_slot(self, seen: Seen) -> tuple[bool, bool, str | None]:
        """(as the sightings show it, truly, why they differ): SCHEDULED while the team runs as
        many backfills as it was ever seen running together, or while its latest list was full;
        truly: while the simulator runs its maximum for the team."""
        team_id = seen.truth.team_id
        running_now = sum(s.status == "RUNNING" for s in self.seen.values() if s.truth.team_id == team_id)
        most = max(
            sum(self.truth.backfills[b].state_at(a.at)["status"] == "RUNNING" for b in a.listed)
            for a in self.truth.ok_polls[team_id]
        )
        capped = len(self.truth.ok_polls[team_id][-1].listed) == 100
        waiting = seen.status == "SCHEDULED" and (running_now >= max(most, running_now) or capped)
        end = self.truth.last_ok_poll(team_id)
        truly_running = sum(
            b.state_at(end) is not None and b.state_at(end)["status"] == "RUNNING"
            for b in self.truth.backfills.values()
            if b.team_id == team_id
        )
        truly = seen.truth.state_at(end)["status"] == "SCHEDULED" and truly_running >= self.max_running
        return waiting, truly, "capped_list" if capped else self.unseen(seen)

    def status_history(self) -> None:
        table = "backfill_status_history"
        model: dict[int, list[Row]] = defaultdict(list)
        for row in sorted(self.tables[table], key=lambda r: (r["transfer_backfill_id"], r["stretch_number"])):
            model[row["transfer_backfill_id"]].append(row)
        tally = self.tallies[table]
        for backfill_id, seen in self.seen.items():
            expected = seen.stretches()
            got = [(r["status"], r["valid_from"]) for r in model.get(backfill_id, [])]
            if got != expected:
                tally.unexplained.append(
                    f"backfill {backfill_id}: stretches {got}, sightings show {expected}"
                )
                continue
            last_poll = self.truth.last_ok_poll(seen.truth.team_id)
            for index, row in enumerate(model[backfill_id]):
                valid_to = expected[index + 1][1] if index + 1 < len(expected) else None
                end = valid_to or (last_poll if row["status"] not in (*FINAL, "UNKNOWN") else None)
                if row["valid_to"] != valid_to or row["duration_seconds"] != seconds(row["valid_from"], end):
                    tally.unexplained.append(f"backfill {backfill_id} stretch {index + 1}: valid_to/duration")
            truth_stretches = seen.truth.stretches()
            for status, at in expected:
                if status == "UNKNOWN":
                    tally.explain(
                        self.unseen(seen) is not None, self.unseen(seen), f"backfill {backfill_id}: UNKNOWN"
                    )
                    continue
                candidates = [t for t in truth_stretches if t[0] == status and t[1] <= at]
                if not candidates:
                    tally.unexplained.append(f"backfill {backfill_id}: {status} from {at} before it happened")
                    continue
                status_, since, _ = candidates[-1]
                first = seen.truth.first_sighting_from(since)
                if at == since:
                    tally.match()
                elif first is not None and at <= first.at:
                    tally.tolerate("between_sightings")
                else:
                    tally.unexplained.append(f"backfill {backfill_id}: {status} from {at}, truth {since}")
            for _, since, until in truth_stretches:
                if not any(since <= s.at and (until is None or s.at < until) for s in seen.truth.sightings):
                    tally.tolerate("unseen_stretch")

    def errors(self) -> None:
        table = "backfill_errors"
        model = self.keyed(table, "transfer_backfill_id", "transfer_run_date", "error")
        expected = {}
        for backfill_id, seen in self.seen.items():
            for (day, error), span in seen.errors().items():
                expected[(backfill_id, day, error)] = span
        normalised = {(k[0], str(k[1]), k[2]): v for k, v in model.items()}
        self.missing_or_extra(table, normalised, expected)
        for key, (first, last) in expected.items():
            row = normalised.get(key)
            if row is None:
                continue
            backfill = self.truth.backfills[key[0]]
            true_first = backfill.errors()[(key[1], key[2])]
            self.check(
                table, key, "first_seen_at", row["first_seen_at"], first, true_first, "between_sightings"
            )
            self.check(table, key, "last_seen_at", row["last_seen_at"], last, last, None)
        for seen in self.seen.values():
            unseen = len(seen.truth.errors()) - len(seen.errors())
            if unseen:
                self.tallies[table].explain(
                    self._failures_lost(seen) is not None,
                    self._failures_lost(seen),
                    f"{unseen} errors unseen",
                )

    def error_summary(self) -> None:
        table = "error_summary"
        pattern_of = {r["error"]: r["error_pattern"] for r in self.tables["backfill_errors"]}
        groups: dict[str, list] = defaultdict(list)
        for seen in self.seen.values():
            for (_, error), (first, last) in seen.errors().items():
                groups[pattern_of.get(error, "?")].append((seen.truth, error, first, last))
        model = self.keyed(table, "error_pattern")
        self.missing_or_extra(table, model, {(p,): g for p, g in groups.items()})
        for (pattern,), row in model.items():
            group = groups.get(pattern)
            if group is None:
                continue
            for column, value in (
                ("occurrences", len(group)),
                ("backfills", len({b.id for b, *_ in group})),
                ("transfers", len({(b.team_id, b.first["transfer_id"]) for b, *_ in group})),
                ("first_seen_at", min(f for *_, f, _ in group)),
                ("last_seen_at", max(last for *_, last in group)),
                ("example_error", min(e for _, e, *_ in group)),
            ):
                self.check(table, pattern, column, row[column], value, value, None)

    def daily_activity(self) -> None:
        table = "daily_activity"
        model = self.keyed(table, "team_id", "day")
        seen_counts: dict[tuple, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        true_counts: dict[tuple, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        # why the sightings and the truth may differ on a (team, day, column): a class per cause
        causes: dict[tuple, set[str | None]] = defaultdict(set)
        for backfill in self.truth.backfills.values():
            team, final, seen = backfill.team_id, backfill.final, self.seen.get(backfill.id)
            for column, at, shown in (
                ("backfills_created", ts(final["created_time"]), seen and ts(seen.state["created_time"])),
                ("backfills_started", ts(final["start_time"]), seen and ts(seen.state["start_time"])),
                (
                    "backfills_finished",
                    self._finished_at(final["status"], final),
                    seen and self._finished_at(seen.status, seen.state),
                ),
            ):
                if at is not None:
                    true_counts[(team, at.date())][column] += 1
                if shown != at:
                    why = "never_listed" if seen is None else self.unseen(seen)
                    for moment in (at, shown):
                        if moment is not None:
                            causes[(team, moment.date(), column)].add(why)
        for seen in self.seen.values():
            team, state = seen.truth.team_id, seen.state
            for column, at in (
                ("backfills_created", ts(state["created_time"])),
                ("backfills_started", ts(state["start_time"])),
                ("backfills_finished", self._finished_at(seen.status, state)),
            ):
                if at is not None:
                    seen_counts[(team, at.date())][column] += 1
            for at, count in seen.completed_deltas():
                seen_counts[(team, at.date())]["runs_completed"] += count
            for at, count in seen.failed_deltas():
                seen_counts[(team, at.date())]["runs_failed"] += count
            for at, kind in seen.truth.runs_done():
                column = f"runs_{kind}"
                true_counts[(team, at.date())][column] += 1
                shown = seen.truth.first_sighting_from(at)
                if shown is None:
                    causes[(team, at.date(), column)].add(self._failures_lost(seen))
                elif shown.at.date() != at.date():
                    causes[(team, at.date(), column)].add("day_boundary")
                    causes[(team, shown.at.date(), column)].add("day_boundary")
                if kind == "failed":
                    causes[(team, at.date(), column)].add(self._failures_lost(seen))
        for (team, day), row in sorted(model.items()):
            seen_day, true_day = seen_counts.get((team, day), {}), true_counts.get((team, day), {})
            for column in (
                "backfills_created",
                "backfills_started",
                "backfills_finished",
                "runs_completed",
                "runs_failed",
            ):
                why = sorted(c for c in causes.get((team, day, column), ()) if c)
                self.check(
                    table,
                    (team, day),
                    column,
                    row[column],
                    seen_day.get(column, 0),
                    true_day.get(column, 0),
                    why[0] if why else None,
                )
            active, truly_active, why = self._active(team, day)
            self.check(
                table, (team, day), "backfills_active", row["backfills_active"], active, truly_active, why
            )
            start = datetime(day.year, day.month, day.day, tzinfo=self.truth.end.tzinfo)
            polls = self.truth.ok_polls[team]
            full = polls[0].at <= start and polls[-1].at >= start + timedelta(days=1)
            self.check(table, (team, day), "is_fully_observed", row["is_fully_observed"], full, full, None)

    def _active(self, team: int, day) -> tuple[int, int, str | None]:
        """Backfills active on the day (created by its end, not finished before it began): as the
        sightings show them, truly, and why the two differ."""
        seen_count, true_count, why = 0, 0, set()
        for backfill in self.truth.backfills.values():
            if backfill.team_id != team:
                continue
            final, seen = backfill.final, self.seen.get(backfill.id)
            created = ts(final["created_time"]).date()
            until = self._finished_at(final["status"], final)
            truly = created <= day and (until is None or until.date() >= day)
            true_count += truly
            if seen is None:
                if truly:
                    why.add("never_listed")
                continue
            until = self._finished_at(seen.status, seen.state) or seen.unknown_since
            shown = created <= day and (until is None or until.date() >= day)
            seen_count += shown
            if shown != truly:
                why.add(self.unseen(seen))
        causes = sorted(c for c in why if c)
        return seen_count, true_count, causes[0] if causes else None

    def transfer_failure_rates(self) -> None:
        table = "transfer_failure_rates"
        model = self.keyed(table, "team_id", "transfer_id")
        groups: dict[tuple, list[Seen]] = defaultdict(list)
        never: dict[tuple, int] = defaultdict(int)
        for backfill in self.truth.backfills.values():
            key = (backfill.team_id, backfill.first["transfer_id"])
            if backfill.id in self.seen:
                groups[key].append(self.seen[backfill.id])
            else:
                never[key] += 1
        self.missing_or_extra(table, model, groups)
        for key, group in groups.items():
            row = model.get(key)
            if row is None:
                continue
            reasons = sorted({r for s in group if (r := self._failures_lost(s))})
            why = reasons[0] if reasons else None
            completed = sum(sum(c for _, c in s.completed_deltas()) for s in group)
            failed = sum(sum(c for _, c in s.failed_deltas()) for s in group)
            true_completed = sum(s.truth.final["transfer_runs_completed"] for s in group)
            true_failed = sum(sum(a[0] for a in s.truth.attempts()) for s in group)
            run_seconds = [self._run_seconds(s) for s in group if s.status == "COMPLETED"]
            true_run_seconds = [
                self._true_run_seconds(s.truth) for s in group if s.truth.final["status"] == "COMPLETED"
            ]
            statuses = [s.status for s in group]
            true_statuses = [s.truth.final["status"] for s in group]
            for column, value, truly, tolerance in (
                ("backfills", len(group), len(group) + never[key], "never_listed"),
                (
                    "backfills_incomplete",
                    sum(s not in (*FINAL, "UNKNOWN") for s in statuses),
                    sum(s not in FINAL for s in true_statuses),
                    why,
                ),
                ("backfills_completed", statuses.count("COMPLETED"), true_statuses.count("COMPLETED"), why),
                ("backfills_cancelled", statuses.count("CANCELLED"), true_statuses.count("CANCELLED"), why),
                ("backfills_failed", statuses.count("FAILED"), true_statuses.count("FAILED"), why),
                (
                    "median_run_seconds",
                    statistics.median(run_seconds) if run_seconds else None,
                    statistics.median(true_run_seconds) if true_run_seconds else None,
                    why,
                ),
                ("p95_run_seconds", p95(run_seconds), p95(true_run_seconds), why),
                (
                    "last_error",
                    last_error(group, seen=True),
                    last_error(group, seen=False),
                    "between_sightings",
                ),
                ("runs_completed", completed, true_completed, why),
                ("runs_failed", failed, true_failed, why),
                (
                    "failure_rate",
                    ratio(failed, completed + failed),
                    ratio(true_failed, true_completed + true_failed),
                    why,
                ),
            ):
                self.check(table, key, column, row[column], value, truly, tolerance)
            created = max(ts(s.state["created_time"]) for s in group)
            self.check(
                table,
                key,
                "last_backfill_created_at",
                row["last_backfill_created_at"],
                created,
                created,
                None,
            )

    def backfill_runs(self) -> None:
        """Every run of type Backfill, as the runs endpoint showed it at its transfer's last sweep
        that met it: a run whose backfill no poll listed may be there, unattributed, or not."""
        table = "backfill_runs"
        tally = self.tallies[table]
        model = self.keyed(table, "team_id", "run_id")
        attempts: dict[tuple, list] = defaultdict(list)
        for run in sorted(self.truth.runs, key=lambda r: (r.created_time, r.id)):
            attempts[run.backfill_id, run.data_date].append(run.id)
        expected = {}
        for run in self.truth.runs:
            key = (run.team_id, run.id)
            sweeps = [t for t in self.truth.run_sweeps[run.team_id, run.transfer_id] if t >= run.created_time]
            if run.backfill_id not in self.seen:
                row = model.pop(key, None)
                tally.explain(
                    row is None or row["transfer_backfill_id"] is None, "never_listed", f"{key}: {row}"
                )
            elif not sweeps:
                tally.explain(model.pop(key, None) is None, "after_last_sweep", f"{key}: stored unswept")
            else:
                expected[key] = (run, sweeps[-1])
        self.missing_or_extra(table, model, expected)
        for key, (run, last_sweep) in expected.items():
            row = model.get(key)
            if row is None:
                continue
            ended = run.ended_time is not None and run.ended_time <= last_sweep
            for column, value, truly, tolerance in (
                ("transfer_id", run.transfer_id, run.transfer_id, None),
                ("transfer_backfill_id", run.backfill_id, run.backfill_id, None),
                ("data_date", run.data_date, run.data_date, None),
                ("attempt", attempts[run.backfill_id, run.data_date].index(run.id) + 1, None, None),
                ("created_time", run.created_time.replace(microsecond=0), None, None),
                ("status", run.status if ended else "RUNNING", run.status, "after_last_sweep"),
                (
                    "ended_time",
                    _second(run.ended_time) if ended else None,
                    _second(run.ended_time),
                    "after_last_sweep",
                ),
                (
                    "duration_seconds",
                    run.total_duration if ended else None,
                    run.total_duration,
                    "after_last_sweep",
                ),
                ("total_rows", run.total_rows if ended else None, run.total_rows, "after_last_sweep"),
                ("message", run.message if ended else "", run.message, "after_last_sweep"),
            ):
                self.check(
                    table, key, column, row[column], value, value if truly is None else truly, tolerance
                )


def _second(at: datetime | None) -> datetime | None:
    """The API's timestamps are whole seconds."""
    return None if at is None else at.replace(microsecond=0)

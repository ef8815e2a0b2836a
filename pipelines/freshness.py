"""How current the numbers are: one verdict for the report's first line and `backfills check`.

Read from `analytics.freshness` (per team: the latest poll and the latest successful one) and
`analytics.model_builds` (every build, failed ones included), in the copy published for BI tools.
Ages are measured on this machine's clock against when the answers arrived here, so they keep
growing while nothing runs: a dead cron job shows as stale, not as current.

Levels and `backfills check` exit codes follow the Nagios plugin convention:

- OK (0): every active team had a successful poll within `max_age`, and the last build succeeded
  (the line gives each team's newest successful poll, or their range for many teams);
- WARNING (1): within `max_age`, but a team's latest poll failed;
- CRITICAL (2): the last model build failed, or a team's newest successful poll is older than
  `max_age` (or it never had one);
- UNKNOWN (3): nothing to judge (no database, no analytics tables).

A team whose latest poll is more than `RETIRED_AFTER` older than the newest poll of any team is
taken as no longer polled (removed from the configuration) and left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from .text import clean, duration, shorten

RETIRED_AFTER = timedelta(days=7)
SHOWN_TEAMS = 3  # more teams than this: the range of their ages, to keep one line
EXIT_CODES = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}


@dataclass(frozen=True)
class Verdict:
    level: str
    line: str

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.level]

    def __str__(self) -> str:
        return f"{self.level}: {self.line}"


def assess(
    teams: list[dict[str, Any]], last_build: dict[str, Any] | None, now: datetime, max_age: timedelta
) -> Verdict:
    """The verdict for rows of analytics.freshness and the latest row of analytics.model_builds."""
    if not teams:
        return Verdict("UNKNOWN", "no poll recorded yet: run backfills ingest")
    newest = max(t["last_received_at"] for t in teams)
    active = [t for t in teams if t["last_received_at"] >= newest - RETIRED_AFTER]
    if last_build and last_build["outcome"] == "failed":
        since = last_build["last_ok_finished_at"]
        tables = (
            f"the tables are those of the build {_ago(since, now)}" if since else "no build succeeded yet"
        )
        return Verdict(
            "CRITICAL",
            f"models stale: the last model build failed {_ago(last_build['finished_at'], now)} "
            f"({shorten(clean(last_build['error'] or ''))}); {tables}",
        )
    stale = [t for t in active if _age(t, now) is None or _age(t, now) > max_age]
    if stale:
        return Verdict("CRITICAL", "; ".join(_stale_team(t, now, max_age) for t in stale))
    failing = [t for t in active if t["last_outcome"] == "failed"]
    built = f"models built {_ago(last_build['finished_at'], now)}" if last_build else "models not built yet"
    ages = _newest_ok_polls(active, now)
    if failing:
        return Verdict("WARNING", "; ".join([*(_failing_team(t) for t in failing), ages, built]))
    return Verdict("OK", f"{ages}; {built}")


def _newest_ok_polls(teams: list[dict[str, Any]], now: datetime) -> str:
    """Each team's newest successful poll, or their range when there are many teams."""
    if len(teams) <= SHOWN_TEAMS:
        each = ", ".join(f"team {t['team_id']} {_ago(t['last_ok_received_at'], now)}" for t in teams)
        return f"newest successful poll of {each}"
    ages = sorted(_age(t, now).total_seconds() for t in teams)
    between = f"{duration(ages[0])} and {_ago_seconds(ages[-1])}"
    return f"newest successful polls of {len(teams)} teams between {between}"


def _age(team: dict[str, Any], now: datetime) -> timedelta | None:
    received = team["last_ok_received_at"]
    return None if received is None else max(now - received, timedelta(0))


def _ago(moment: datetime, now: datetime) -> str:
    return _ago_seconds((now - moment).total_seconds())


def _ago_seconds(seconds: float) -> str:
    return f"{duration(max(seconds, 0))} ago"


def _last_failure(team: dict[str, Any]) -> str:
    return shorten(clean(f"{team['last_error_class'] or 'failed'}: {team['last_error_message'] or ''}"))


def _stale_team(team: dict[str, Any], now: datetime, max_age: timedelta) -> str:
    age = _age(team, now)
    what = (
        f"team {team['team_id']} never had a successful poll"
        if age is None
        else f"team {team['team_id']}'s newest successful poll is {duration(age.total_seconds())} old "
        f"(limit {duration(max_age.total_seconds())})"
    )
    if team["last_outcome"] == "failed":
        what += f", its last {team['failed_polls_since_ok']} poll(s) failed ({_last_failure(team)})"
    return what


def _failing_team(team: dict[str, Any]) -> str:
    failed = team["failed_polls_since_ok"]
    return f"the last {failed} poll(s) of team {team['team_id']} failed ({_last_failure(team)})"

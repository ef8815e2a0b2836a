"""The freshness verdict from hand-made rows of analytics.freshness and analytics.model_builds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pipelines.freshness import assess

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
LIMIT = timedelta(minutes=20)


def team(
    team_id: int = 1, ok_minutes_ago: float | None = 3, failed_since: int = 0, last_minutes_ago: float = 3
):
    failed = failed_since > 0
    return {
        "team_id": team_id,
        "last_received_at": NOW - timedelta(minutes=last_minutes_ago),
        "last_outcome": "failed" if failed else "ok",
        "last_error_class": "API unavailable" if failed else None,
        "last_error_message": "HTTP 503 \x1b[2Jafter 5 attempts" if failed else None,
        "last_ok_received_at": None if ok_minutes_ago is None else NOW - timedelta(minutes=ok_minutes_ago),
        "failed_polls_since_ok": failed_since,
    }


def build(outcome: str = "ok", minutes_ago: float = 3, last_ok_minutes_ago: float | None = 3) -> dict:
    return {
        "outcome": outcome,
        "finished_at": NOW - timedelta(minutes=minutes_ago),
        "error": None
        if outcome == "ok"
        else "1 of 95 data tests failed: analytics.polls: grain (poll_id) is unique",
        "last_ok_finished_at": None
        if last_ok_minutes_ago is None
        else NOW - timedelta(minutes=last_ok_minutes_ago),
    }


@pytest.mark.parametrize(
    ("teams", "last_build", "expected"),
    [
        pytest.param(
            [team(1), team(2, ok_minutes_ago=8)],
            build(),
            "OK: newest successful poll of team 1 3m 00s ago, team 2 8m 00s ago; models built 3m 00s ago",
            id="fresh",
        ),
        pytest.param(
            [team(1, ok_minutes_ago=12, failed_since=2, last_minutes_ago=2)],
            build(minutes_ago=2),
            "WARNING: the last 2 poll(s) of team 1 failed "
            "(API unavailable: HTTP 503 \\x1b[2Jafter 5 attempts); "
            "newest successful poll of team 1 12m 00s ago; models built 2m 00s ago",
            id="failing-but-within-max-age",
        ),
        pytest.param(
            [team(1, ok_minutes_ago=45, failed_since=9, last_minutes_ago=1)],
            build(minutes_ago=1),
            "CRITICAL: team 1's newest successful poll is 45m 00s old (limit 20m 00s), its last 9 poll(s) "
            "failed (API unavailable: HTTP 503 \\x1b[2Jafter 5 attempts)",
            id="too-old",
        ),
        pytest.param(
            [team(1, ok_minutes_ago=None, failed_since=3)],
            build(),
            "CRITICAL: team 1 never had a successful poll, its last 3 poll(s) failed "
            "(API unavailable: HTTP 503 \\x1b[2Jafter 5 attempts)",
            id="never-succeeded",
        ),
        pytest.param(
            [team(1, ok_minutes_ago=130, last_minutes_ago=130)],
            build(minutes_ago=130),
            "CRITICAL: team 1's newest successful poll is 2h 10m old (limit 20m 00s)",
            id="nothing-ran-since",
        ),
        pytest.param(
            [team(1)],
            build("failed", minutes_ago=1, last_ok_minutes_ago=61),
            "CRITICAL: models stale: the last model build failed 1m 00s ago (1 of 95 data tests failed: "
            "analytics.polls: grain (poll_id) is unique); the tables are those of the build 1h 01m ago",
            id="build-failed",
        ),
        pytest.param(
            [team(1)],
            build("failed", last_ok_minutes_ago=None),
            "CRITICAL: models stale: the last model build failed 3m 00s ago (1 of 95 data tests failed: "
            "analytics.polls: grain (poll_id) is unique); no build succeeded yet",
            id="no-build-ever-succeeded",
        ),
        pytest.param(
            [team(1), team(2, ok_minutes_ago=60 * 24 * 30, last_minutes_ago=60 * 24 * 30)],
            build(),
            "OK: newest successful poll of team 1 3m 00s ago; models built 3m 00s ago",
            id="a-team-not-polled-for-a-month-is-retired",
        ),
        pytest.param(
            [team(n, ok_minutes_ago=n) for n in range(1, 6)],
            build(),
            "OK: newest successful polls of 5 teams between 1m 00s and 5m 00s ago; models built 3m 00s ago",
            id="many-teams-in-one-line",
        ),
        pytest.param([], None, "UNKNOWN: no poll recorded yet: run backfills ingest", id="nothing-yet"),
    ],
)
def test_verdict(teams: list[dict], last_build: dict | None, expected: str) -> None:
    assert str(assess(teams, last_build, NOW, LIMIT)) == expected


def test_exit_codes_follow_nagios() -> None:
    assert assess([team()], build(), NOW, LIMIT).exit_code == 0
    assert assess([team(ok_minutes_ago=5, failed_since=1)], build(), NOW, LIMIT).exit_code == 1
    assert assess([team(ok_minutes_ago=50)], build(), NOW, LIMIT).exit_code == 2
    assert assess([], None, NOW, LIMIT).exit_code == 3

"""The runs list's query parameters (`GET /teams/{t}/transfers/{tr}/runs`), as the description
documents them, and how the simulator applies them.

Where the description is silent the simulator decides, and says so here:
- `start_date` / `end_date` (required, both inclusive) filter on a run's `created_time`. A date
  (`2024-01-31`) covers that whole UTC day; a date-time is an instant.
- `limit` above the documented maximum of 10000 is refused (400), not capped: a client that asks
  for more than it gets could take a full page for the last one.
- Ties in the sort field are broken by run id, in the same direction, so pages never overlap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from .world import ApiError, TransferRun

MAX_LIMIT = 10_000
SORT_FIELDS = ("created_time", "ended_time", "data_date")


def _bad(description: str) -> ApiError:
    return ApiError(400, "BAD_REQUEST", "The request was invalid.", description)


@dataclass(frozen=True)
class RunsQuery:
    start: datetime
    end: datetime  # exclusive
    issues_only: bool = False
    sort_field: str = "created_time"
    descending: bool = True
    limit: int = 100
    offset: int = 0

    def page(self, runs: list[TransferRun]) -> list[TransferRun]:
        chosen = [
            r
            for r in runs
            if self.start <= r.created_time < self.end and (not self.issues_only or r.status == "FAILED")
        ]

        def key(run: TransferRun) -> tuple:
            value = getattr(run, self.sort_field)
            # runs without the field (still running: no ended_time) sort after the others, ascending
            return (value is None, value or datetime.min.replace(tzinfo=UTC), run.id)

        chosen.sort(key=key, reverse=self.descending)
        return chosen[self.offset : self.offset + self.limit]


def parse(query: dict[str, list[str]]) -> RunsQuery:
    """The query string's parameters; `ApiError` 400 naming the first bad one."""
    unknown = sorted(
        set(query)
        - {"start_date", "end_date", "filter_issues_only", "sort_field", "sort_direction", "limit", "offset"}
    )
    if unknown:
        raise _bad(f"Unknown query parameter: {unknown[0]}.")
    start = _instant(query, "start_date", end_of_day=False)
    end = _instant(query, "end_date", end_of_day=True)
    sort_field = _one(query, "sort_field") or "created_time"
    if sort_field not in SORT_FIELDS:
        raise _bad(f"sort_field must be one of {', '.join(SORT_FIELDS)}.")
    direction = _one(query, "sort_direction") or "DESC"
    if direction not in ("ASC", "DESC"):
        raise _bad("sort_direction must be ASC or DESC.")
    issues = _one(query, "filter_issues_only") or "false"
    if issues not in ("true", "false"):
        raise _bad("filter_issues_only must be true or false.")
    limit = _integer(query, "limit", 100, minimum=1)
    if limit > MAX_LIMIT:
        raise _bad(f"limit must be at most {MAX_LIMIT}.")
    return RunsQuery(
        start, end, issues == "true", sort_field, direction == "DESC", limit, _integer(query, "offset", 0, 0)
    )


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    if values is None:
        return None
    if len(values) > 1:
        raise _bad(f"{name} is given more than once.")
    return values[0]


def _instant(query: dict[str, list[str]], name: str, end_of_day: bool) -> datetime:
    value = _one(query, name)
    if not value:
        raise _bad(f"{name} is required (a date such as 2024-01-31, or a date-time).")
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return start + timedelta(days=1) if end_of_day else start
        instant = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _bad(f"{name} is not a date or a date-time: {value}.") from None
    instant = instant if instant.tzinfo else instant.replace(tzinfo=UTC)
    return instant + timedelta(microseconds=1) if end_of_day else instant


def _integer(query: dict[str, list[str]], name: str, default: int, minimum: int) -> int:
    value = _one(query, name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise _bad(f"{name} must be an integer, not {value}.") from None
    if number < minimum:
        raise _bad(f"{name} must be at least {minimum}.")
    return number

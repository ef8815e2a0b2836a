"""Read what the destination already holds: the state change detection diffs against.

The database is the only source of truth: dlt's local pipeline state is never consulted, so a
lost or deleted working folder cannot make a run forget (or repeat) history.

The SQL here runs on DuckDB and PostgreSQL alike: "the latest row per key" is a `row_number()`
in a subquery (no QUALIFY), a semi join is `exists`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from .settings import CANCELLED_LOOKUPS, LISTING_EVENTS, LOOKUPS, POLLS, RUNS, SWEEPS, TRANSFERS, VERSIONS
from .snapshot import Baseline, KnownBackfill, TeamBaseline
from .sweep import OVERLAP

if TYPE_CHECKING:
    from ..engines import Connection

# The sweep's memory reaches back this far (so that reading it does not grow with the history):
# a transfer not swept for longer starts afresh at its oldest backfill seen.
SWEEP_MEMORY = "30 days"


def _latest_versions(among: str, columns: str) -> str:
    """The latest stored version of each backfill of `among` (a CTE of team_id, transfer_backfill_id):
    a semi join first, so that DuckDB's scan skips the row groups of every other backfill."""
    return f"""select {columns}
    from (
        select
            v.*,
            row_number()
                over (partition by v.team_id, v.transfer_backfill_id order by v.poll_id desc) as recency
        from {{ds}}.{VERSIONS} as v
        where exists (
            select 1 from {among} as k
            where k.team_id = v.team_id and k.transfer_backfill_id = v.transfer_backfill_id
        )
    ) as versions
    where recency = 1"""


# what a run diffs a listed or pending backfill against
_LATEST_COLUMNS = (
    "team_id, transfer_backfill_id, state_hash, error_report_hash, error_report_poll_id, "
    "transfer_id, created_time"
)

# Per backfill not confirmed finished: listed in the team's last successful poll, pending (left
# the list, no answered lookup since), due for a recheck (the last answer said still incomplete:
# hidden by the cap; or CANCELLED while a run of it may be in flight, fewer than CANCELLED_LOOKUPS
# times),
# or not found (it may be listed again, and must then not look new).
_RELEVANT = f"""
last_answers as (
    select team_id, transfer_backfill_id, outcome, status, poll_id, cancelled_lookups
    from (
        select
            team_id,
            transfer_backfill_id,
            outcome,
            status,
            poll_id,
            count(case when status = 'CANCELLED' then 1 end)
                over (partition by team_id, transfer_backfill_id) as cancelled_lookups,
            row_number() over (partition by team_id, transfer_backfill_id order by poll_id desc) as recency
        from {{ds}}.{LOOKUPS}
        where outcome in ('final', 'incomplete', 'not_found')
    ) as answers
    where recency = 1
),
cancel_candidates as (
    -- the last answers that may still move: CANCELLED, with lookups left. The reads of the
    -- versions below are joined with these few rows only, so DuckDB's scans skip the row groups
    -- of every other backfill (over every answer, they read the whole history at every run)
    select team_id, transfer_backfill_id, poll_id
    from last_answers
    where status = 'CANCELLED' and cancelled_lookups < {CANCELLED_LOOKUPS}
),
candidate_versions as (
    -- the latest stored state of each of them
    {_latest_versions("cancel_candidates", "*")}
),
moving as (
    -- CANCELLED, and a run in flight may still finish and count: the counters moved at the last
    -- lookup (it stored a new version), or the runs endpoint says a run of it has not ended (or
    -- was not asked since)
    select a.team_id, a.transfer_backfill_id
    from cancel_candidates as a
    where
        exists (
            select 1 from {{ds}}.{VERSIONS} as v
            where v.team_id = a.team_id and v.transfer_backfill_id = a.transfer_backfill_id
                and v.poll_id = a.poll_id and v.source = 'lookup'
        )
        or {{in_flight}}
),
rechecked as (
    select
        a.*,
        exists (
            select 1 from moving as m
            where m.team_id = a.team_id and m.transfer_backfill_id = a.transfer_backfill_id
        ) as is_cancel_moving
    from last_answers as a
),
relevant as (
    select
        e.team_id,
        e.transfer_backfill_id,
        e.event = 'listed' as is_listed,
        e.event = 'unlisted' and c.outcome is null as is_pending,
        coalesce(e.event = 'unlisted' and (c.outcome = 'incomplete' or c.is_cancel_moving), false)
            as is_recheck,
        c.poll_id as checked_poll_id,
        c.cancelled_lookups
    from (
        select
            team_id,
            transfer_backfill_id,
            event,
            poll_id,
            row_number() over (partition by team_id, transfer_backfill_id order by poll_id desc) as recency
        from {{ds}}.{LISTING_EVENTS}
    ) as e
    left join rechecked as c
        on
            c.team_id = e.team_id
            and c.transfer_backfill_id = e.transfer_backfill_id
            and c.poll_id >= e.poll_id
    where
        e.recency = 1
        and (e.event = 'listed' or c.outcome is distinct from 'final' or c.is_cancel_moving)
),
latest as (
    {_latest_versions("relevant", _LATEST_COLUMNS)}
)"""

# A CANCELLED backfill (`a`) whose run may still be in flight: a stored run of it (its transfer, a
# day of its range, created between its creation and the cancel) with no stored end, or no runs
# sweep of its transfer since the cancel. Without the sweep's tables: false.
_IN_FLIGHT = f"""exists (
    select 1 from candidate_versions as cv
    where cv.team_id = a.team_id and cv.transfer_backfill_id = a.transfer_backfill_id
        and (
            exists (
                select 1 from {{ds}}.{RUNS} as r
                where r.team_id = cv.team_id and r.transfer_id = cv.transfer_id and r.type = 'Backfill'
                    and r.data_date between cv.range_start_date and cv.range_end_date
                    and r.created_time >= cv.created_time
                    and r.created_time <= coalesce(cv.removed_time, cv.end_time, r.created_time)
                    and not exists (
                        select 1 from {{ds}}.{RUNS} as ended
                        where ended.team_id = r.team_id and ended.run_id = r.run_id
                            and ended.ended_time is not null
                    )
            )
            or not exists (
                select 1 from {{ds}}.{SWEEPS} as s
                where s.team_id = cv.team_id and s.transfer_id = cv.transfer_id and s.kind = 'runs'
                    and s.outcome = 'ok' and s.swept_at >= coalesce(cv.removed_time, cv.end_time)
            )
        )
)"""

_BACKFILLS = f"""
with {_RELEVANT}
select
    r.team_id, r.transfer_backfill_id, r.is_listed, r.is_pending, r.is_recheck, r.checked_poll_id,
    r.cancelled_lookups, l.state_hash, l.error_report_hash, l.error_report_poll_id, l.transfer_id,
    l.created_time
from relevant as r
left join latest as l using (team_id, transfer_backfill_id)
"""

# The versions holding the error reports of those latest versions (found through
# error_report_poll_id): their dlt row ids, which the report's child rows name as their parent.
_REPORT_HOLDERS = f"""
with {_RELEVANT}
select v.team_id, v.transfer_backfill_id, v._dlt_id
from {{ds}}.{VERSIONS} as v
join latest as l
    on l.team_id = v.team_id and l.transfer_backfill_id = v.transfer_backfill_id
    and l.error_report_poll_id = v.poll_id
"""
# The child rows are read by their parents' ids, a few hundred at a time: a join would hash every
# report ever stored (the database's estimates make it the build side): some 20 MiB over a year.
_REPORTS_OF = (
    "select _dlt_parent_id, transfer_run_date, error from {ds}.{table} where _dlt_parent_id in ({ids})"
)
_REPORTS_AT_ONCE = 500


def read_baseline(con: Connection, dataset: str) -> Baseline:
    """The next poll id and, per team, the listed and pending backfills with their latest versions."""
    tables = {
        row[0]
        for row in con.rows(
            "select table_name from information_schema.tables where table_schema = %s", dataset
        )
    }
    if not {POLLS, VERSIONS, LISTING_EVENTS, LOOKUPS} <= tables:
        return Baseline()
    ds = f'"{dataset}"'
    next_poll_id = con.rows(f"select coalesce(max(poll_id), 0) + 1 from {ds}.{POLLS}")[0][0]
    in_flight = _IN_FLIGHT.format(ds=ds) if {RUNS, SWEEPS} <= tables else "false"
    errors: dict[tuple[int, int], set] = defaultdict(set)
    reports = f"{VERSIONS}__error_report"
    if reports in tables:
        holders = {
            row_id: (team_id, backfill_id)
            for team_id, backfill_id, row_id in con.rows(_REPORT_HOLDERS.format(ds=ds, in_flight=in_flight))
        }
        row_ids = sorted(holders)
        for start in range(0, len(row_ids), _REPORTS_AT_ONCE):
            chunk = row_ids[start : start + _REPORTS_AT_ONCE]
            query = _REPORTS_OF.format(ds=ds, table=reports, ids=", ".join(["%s"] * len(chunk)))
            for parent, run_date, error in con.rows(query, *chunk):
                errors[holders[parent]].add((run_date, error))
    teams: dict[int, TeamBaseline] = defaultdict(TeamBaseline)
    for team_id, backfill_id, is_listed, is_pending, is_recheck, checked, cancelled, *latest in con.rows(
        _BACKFILLS.format(ds=ds, in_flight=in_flight)
    ):
        team = teams[team_id]
        if is_listed:
            team.listed.add(backfill_id)
        elif is_pending:
            team.pending_lookups.add(backfill_id)
        elif is_recheck:
            team.rechecks[backfill_id] = checked
            if cancelled:
                team.cancelled_lookups[backfill_id] = cancelled
        if latest[0] is not None:  # a 404 lookup leaves a backfill with no version: nothing to diff
            state_hash, report_hash, report_poll_id, transfer_id, created = latest
            team.known[backfill_id] = KnownBackfill(
                state_hash,
                report_hash,
                report_poll_id,
                frozenset(errors[team_id, backfill_id]),
                transfer_id,
                created,
            )
    for team_id, backfill_id in con.rows(_SEEN.format(ds=ds)):
        teams[team_id].sweep.seen_backfills.add(backfill_id)
    if {TRANSFERS, RUNS, SWEEPS} <= tables:
        _read_sweeps(con, ds, teams)
    return Baseline(next_poll_id=next_poll_id, teams=dict(teams), tables=tables)


# Every backfill stored for a team: `latest` stores one only when it is none of these.
_SEEN = f"""
select distinct team_id, transfer_backfill_id from {{ds}}.{LISTING_EVENTS}
union
select distinct team_id, transfer_backfill_id from {{ds}}.{VERSIONS} where source = 'latest'
"""

_RECENT_SWEEPS = f"""
select * from {{ds}}.{SWEEPS}
where swept_at >= (select max(swept_at) from {{ds}}.{SWEEPS}) - interval '{SWEEP_MEMORY}'
"""

# Per transfer, the last runs window: where the next one starts (after the overlap when it
# finished, at its own start when it failed or ran out of requests).
_WINDOWS = f"""
with recent as ({_RECENT_SWEEPS})
select team_id, transfer_id, finished, next_window
from (
    select
        team_id,
        transfer_id,
        outcome = 'ok' as finished,
        case
            when outcome = 'ok' then swept_at - interval '{OVERLAP.total_seconds():g} seconds'
            else window_start
        end as next_window,
        row_number() over (partition by team_id, transfer_id order by poll_id desc, swept_at desc) as recency
    from recent
    where kind = 'runs'
) as windows
where recency = 1
"""

# The stored runs a next window can meet again, latest version each; and where each transfer's
# oldest unfinished run was created (its window reaches back to it).
_RUNS = f"""
with windows as ({_WINDOWS})
select team_id, transfer_id, run_id, state_hash, unfinished, created_time
from (
    select
        r.team_id,
        r.transfer_id,
        r.run_id,
        r.state_hash,
        r.ended_time is null as unfinished,
        r.created_time,
        row_number() over (partition by r.team_id, r.run_id order by r.poll_id desc) as recency
    from {{ds}}.{RUNS} as r
    join windows as w on w.team_id = r.team_id and w.transfer_id = r.transfer_id
    where r.created_time >= w.next_window - interval '1 day'
) as runs
where recency = 1
"""

_TRANSFERS = f"""
select team_id, transfer_id, state_hash
from (
    select
        team_id,
        transfer_id,
        state_hash,
        row_number() over (partition by team_id, transfer_id order by poll_id desc) as recency
    from {{ds}}.{TRANSFERS}
) as transfers
where recency = 1
"""


def _read_sweeps(con: Connection, ds: str, teams: dict[int, TeamBaseline]) -> None:
    for team_id, transfer_id, state_hash in con.rows(_TRANSFERS.format(ds=ds)):
        teams[team_id].sweep.transfers[transfer_id] = state_hash
    recent = _RECENT_SWEEPS.format(ds=ds)
    for team_id, refreshed_at in con.rows(
        f"select team_id, max(swept_at) from ({recent}) as recent "
        "where kind = 'transfers' and outcome = 'ok' group by team_id"
    ):
        teams[team_id].sweep.transfers_refreshed_at = refreshed_at
    for team_id, transfer_id, poll_id in con.rows(
        f"select team_id, transfer_id, max(poll_id) from ({recent}) as recent where kind = 'latest' "
        "group by team_id, transfer_id"
    ):
        teams[team_id].sweep.latest_checked[transfer_id] = poll_id
    for team_id, transfer_id, finished, next_window in con.rows(_WINDOWS.format(ds=ds)):
        sweep = teams[team_id].sweep
        sweep.next_window[transfer_id] = next_window
        if not finished:
            sweep.unfinished.add(transfer_id)
    for team_id, transfer_id, run_id, state_hash, unfinished, created in con.rows(_RUNS.format(ds=ds)):
        sweep = teams[team_id].sweep
        sweep.runs[run_id] = state_hash
        if unfinished and created is not None:
            sweep.next_window[transfer_id] = min(sweep.next_window[transfer_id], created)

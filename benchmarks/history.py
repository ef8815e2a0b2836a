"""Generate a long raw history directly in DuckDB: a year of 5-minute polls of a team with
20 backfills running at all times, each changing at every poll (the worst case for change-only
storage: about two million versions a team), for one team or several alike. The database first
gets its tables from one real ingest against the simulator, so the generated rows land in dlt's
own schema.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import duckdb

from pipelines.ingest import ingest
from pipelines.simulator import Simulator

TEAM = 936506
POLL_SECONDS = 300


def create_tables(db_path: Path) -> None:
    """One real ingest, so that every raw table exists with dlt's columns and bookkeeping. No
    build and no publish: the generated history replaces this poll, which happened later."""
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "CRITICAL")
    with Simulator(speed=0, teams=(TEAM,)) as sim:
        os.environ["SOURCES__SUPERMETRICS__API_KEY"] = sim.api_key
        transfer = sim.world.add_transfer(TEAM, failure_rate=1.0, median_run_seconds=60).id
        day = (sim.clock.now() - timedelta(days=1)).date()
        sim.world.create(TEAM, transfer, day, day, 789)
        sim.clock.advance(600)  # one failed run: the error report child table exists too
        ingest(db_path, team_ids=[TEAM], base_url=sim.base_url, build_models=False)


GENERATE = """
set variable polls = {polls};
set variable concurrent = {concurrent};
set variable life = {life};          -- polls a backfill stays listed
set variable start_at = timestamptz '2025-01-01 00:00:00+00';

delete from supermetrics.polls;
delete from supermetrics.backfill_versions;
delete from supermetrics.backfill_versions__error_report;
delete from supermetrics.listing_events;
delete from supermetrics.backfill_lookups;

-- every team has the same history; at poll time p the teams' polls are numbered one after
-- another, as one run numbers them
create or replace temp table bench_teams as
select idx, {team} + idx as team_id from range(0, {teams}) as t(idx);
create or replace temp macro poll_of(p, idx) as (p - 1) * {teams} + idx + 1;
create or replace temp macro at_poll(p) as getvariable('start_at') + to_seconds(p * {poll_seconds});

insert into supermetrics.polls by name
select
    poll_of(p, idx) as poll_id, team_id, at_poll(p) as polled_at, at_poll(p) as received_at,
    'ok' as outcome, 200 as http_status, md5(p || '-' || idx) as request_id,
    getvariable('concurrent') as backfills_listed, false as possibly_truncated, 1 as backfills_left,
    40.0 as duration_ms, 4000 as rate_limit_remaining,
    'bench' as _dlt_load_id, md5('poll' || p || '-' || idx) as _dlt_id
from range(1, getvariable('polls') + 1) as t(p), bench_teams
order by p, idx;

-- backfill b is listed from poll first_poll(b) for `life` polls; `concurrent` of them at any time
create or replace temp table bench_backfills as
select
    idx, team_id,
    b as backfill_id,
    100000 + b + 10000000 * idx as transfer_backfill_id,
    500000 + (b % 40) as transfer_id,
    1 + (b * getvariable('life')) // getvariable('concurrent') as first_poll,
    getvariable('life') as life
from range(0, getvariable('polls') * getvariable('concurrent') // getvariable('life')) as t(b), bench_teams
where not {finished_only}
    or 1 + (b * getvariable('life')) // getvariable('concurrent') + getvariable('life')
        <= getvariable('polls');

insert into supermetrics.backfill_versions by name
select
    poll_of(p, idx) as poll_id, team_id, at_poll(p) as observed_at, 'list' as source,
    transfer_backfill_id, transfer_id,
    date '2024-01-01' as range_start_date, date '2024-01-01' + cast(life - 1 as integer) as range_end_date,
    case when p = first_poll then 'SCHEDULED' else 'RUNNING' end as status,
    at_poll(first_poll) - interval 60 second as created_time,
    789 as created_user_id,
    case when p > first_poll then at_poll(first_poll + 1) end as start_time,
    null::timestamptz as end_time, null::timestamptz as removed_time, null::bigint as removed_user_id,
    life as transfer_runs_total, life as transfer_runs_created,
    (p - first_poll) - ((p - first_poll) // 50) as transfer_runs_completed,
    (p - first_poll) // 50 as transfer_runs_failed,
    (p - first_poll) // 50 as error_count,
    md5(transfer_backfill_id || '-' || p) as state_hash,
    md5(transfer_backfill_id || '-' || ((p - first_poll) // 50)) as error_report_hash,
    poll_of(first_poll + 50 * ((p - first_poll) // 50), idx) as error_report_poll_id,
    null as extra_fields,
    'bench' as _dlt_load_id, md5('v' || transfer_backfill_id || '-' || p) as _dlt_id
from bench_backfills, range(first_poll, least(first_poll + life, getvariable('polls') + 1)) as t(p)
order by p, idx;

-- a new failed run every 50 polls: the report grows by one entry, stored with that version
insert into supermetrics.backfill_versions__error_report by name
select
    date '2024-01-01' + cast(e as integer) as transfer_run_date,
    'Connection timeout to data source after ' || (30 * (1 + e % 4)) || ' seconds' as error,
    md5('v' || transfer_backfill_id || '-' || (first_poll + 50 * k)) as _dlt_parent_id,
    e as _dlt_list_idx, 'bench' as _dlt_load_id,
    md5('e' || transfer_backfill_id || '-' || k || '-' || e) as _dlt_id
from bench_backfills, range(1, life // 50 + 1) as t(k), range(0, k) as u(e)
where first_poll + 50 * k < least(first_poll + life, getvariable('polls') + 1);

insert into supermetrics.listing_events by name
select poll_of(first_poll, idx) as poll_id, team_id, transfer_backfill_id, 'listed' as event,
       at_poll(first_poll) as observed_at,
       'bench' as _dlt_load_id, md5('l' || transfer_backfill_id) as _dlt_id
from bench_backfills
union all
select poll_of(first_poll + life, idx), team_id, transfer_backfill_id, 'unlisted', at_poll(first_poll + life),
       'bench', md5('u' || transfer_backfill_id)
from bench_backfills where first_poll + life <= getvariable('polls');

insert into supermetrics.backfill_lookups by name
select poll_of(first_poll + life, idx) as poll_id, team_id, transfer_backfill_id,
       at_poll(first_poll + life) + interval 1 second as looked_up_at,
       'final' as outcome, 'COMPLETED' as status, 200 as http_status,
       md5('q' || transfer_backfill_id) as request_id,
       30.0 as duration_ms, 'bench' as _dlt_load_id, md5('k' || transfer_backfill_id) as _dlt_id
from bench_backfills where first_poll + life <= getvariable('polls');

insert into supermetrics.backfill_versions by name
select
    poll_of(first_poll + life, idx) as poll_id, team_id,
    at_poll(first_poll + life) + interval 1 second as observed_at,
    'lookup' as source, transfer_backfill_id, transfer_id,
    date '2024-01-01' as range_start_date, date '2024-01-01' + cast(life - 1 as integer) as range_end_date,
    'COMPLETED' as status,
    at_poll(first_poll) - interval 60 second as created_time,
    789 as created_user_id,
    at_poll(first_poll + 1) as start_time,
    at_poll(first_poll + life) - interval 30 second as end_time,
    null::timestamptz as removed_time, null::bigint as removed_user_id,
    life as transfer_runs_total, life as transfer_runs_created,
    life - (life - 1) // 50 as transfer_runs_completed, (life - 1) // 50 as transfer_runs_failed,
    (life - 1) // 50 as error_count,
    md5(transfer_backfill_id || '-final') as state_hash,
    md5(transfer_backfill_id || '-' || ((life - 1) // 50)) as error_report_hash,
    poll_of(first_poll + 50 * ((life - 1) // 50), idx) as error_report_poll_id, null as extra_fields,
    'bench' as _dlt_load_id, md5('f' || transfer_backfill_id) as _dlt_id
from bench_backfills where first_poll + life <= getvariable('polls');

checkpoint;
"""


def generate(
    db_path: Path,
    polls: int = 365 * 288,
    concurrent: int = 20,
    life: int = 432,
    teams: int = 1,
    finished_only: bool = False,
) -> dict[str, int]:
    """Fill `db_path` with the history of `teams` teams (ids from 936506 on, each the same);
    returns row counts per raw table. `finished_only`: without the backfills still listed at the
    end, so that a real poll afterwards finds only what the API lists then."""
    if not db_path.exists():
        create_tables(db_path)
    sql = GENERATE.format(
        polls=polls,
        concurrent=concurrent,
        life=life,
        team=TEAM,
        teams=teams,
        poll_seconds=POLL_SECONDS,
        finished_only=str(finished_only).lower(),
    )
    with duckdb.connect(str(db_path)) as con:
        con.execute("set enable_progress_bar = false")
        con.execute(sql)
        return {
            t: con.execute(f"select count(*) from supermetrics.{t}").fetchone()[0]
            for t in (
                "polls",
                "backfill_versions",
                "backfill_versions__error_report",
                "listing_events",
                "backfill_lookups",
            )
        }

-- One row per UTC day and team: backfills created, started, finished and active, runs done.
with backfills as (
    select * from analytics.backfills
),

daily_runs as (
    select * from staging.int_backfill_daily_runs
),

polls as (
    select * from staging.stg_supermetrics__polls
),

current_state as (
    select * from staging.int_backfill_current_state
),

backfill_days as (
    select
        backfills.team_id,
        cast(timezone('UTC', backfills.created_time) as date) as created_date,
        cast(timezone('UTC', backfills.start_time) as date) as started_date,
        cast(timezone('UTC', backfills.finished_at) as date) as finished_date,
        -- active until it finished, or until it stopped being known if its end is unknown
        cast(timezone('UTC', coalesce(
            backfills.finished_at,
            case when backfills.status = 'UNKNOWN' then current_state.unknown_since end
        )) as date) as active_until_date
    from backfills
    left join current_state
        on
            current_state.team_id = backfills.team_id
            and current_state.transfer_backfill_id = backfills.transfer_backfill_id
),

poll_span as (
    -- each team's polls by their bounds alone (a day's cast of the first and the last), not a cast
    -- of every poll: this runs at every build over a history that only grows
    select
        team_id,
        min(polled_at) as first_polled_at,
        max(polled_at) as last_polled_at,
        -- the span the team's successful polls cover: days outside it, or cut by its ends, are partial
        min(case when outcome = 'ok' then polled_at end) as first_ok_poll_at,
        max(case when outcome = 'ok' then polled_at end) as last_ok_poll_at
    from polls
    group by team_id
),

bounds as (
    select
        team_id,
        min(day) as first_day,
        max(day) as last_day
    from (
        select team_id, cast(timezone('UTC', first_polled_at) as date) as day from poll_span
        union all
        select team_id, cast(timezone('UTC', last_polled_at) as date) as day from poll_span
        union all
        select team_id, created_date as day from backfill_days
    ) as team_days
    group by team_id
),

days as (
    select
        bounds.team_id,
        cast(series.day_start as date) as day
    from bounds,
        generate_series(
            cast(bounds.first_day as timestamp), cast(bounds.last_day as timestamp), interval '1 day'
        ) as series (day_start)
),

created as (
    select team_id, created_date as day, count(*) as backfills_created
    from backfill_days group by team_id, created_date
),

started as (
    select team_id, started_date as day, count(*) as backfills_started
    from backfill_days where started_date is not null group by team_id, started_date
),

finished as (
    select team_id, finished_date as day, count(*) as backfills_finished
    from backfill_days where finished_date is not null group by team_id, finished_date
),

active as (
    select
        days.team_id,
        days.day,
        count(*) as backfills_active
    from days
    inner join backfill_days
        on
            backfill_days.team_id = days.team_id
            and backfill_days.created_date <= days.day
            and coalesce(backfill_days.active_until_date, days.day) >= days.day
    group by days.team_id, days.day
),

runs as (
    -- runs seen done between two stored states count on the day the later state was observed
    select
        team_id,
        day,
        cast(sum(runs_completed) as bigint) as runs_completed,
        cast(sum(runs_failed) as bigint) as runs_failed
    from daily_runs
    group by team_id, day
),

final as (
    select
        days.day,
        days.team_id,
        coalesce(created.backfills_created, 0) as backfills_created,
        coalesce(started.backfills_started, 0) as backfills_started,
        coalesce(finished.backfills_finished, 0) as backfills_finished,
        coalesce(active.backfills_active, 0) as backfills_active,
        coalesce(runs.runs_completed, 0) as runs_completed,
        coalesce(runs.runs_failed, 0) as runs_failed,
        coalesce(
            poll_span.first_ok_poll_at <= timezone('UTC', cast(days.day as timestamp))
            and poll_span.last_ok_poll_at >= timezone('UTC', cast(days.day + 1 as timestamp)),
            false
        ) as is_fully_observed
    from days
    left join created on created.team_id = days.team_id and created.day = days.day
    left join started on started.team_id = days.team_id and started.day = days.day
    left join finished on finished.team_id = days.team_id and finished.day = days.day
    left join active on active.team_id = days.team_id and active.day = days.day
    left join runs on runs.team_id = days.team_id and runs.day = days.day
    left join poll_span on poll_span.team_id = days.team_id
)

select * from final

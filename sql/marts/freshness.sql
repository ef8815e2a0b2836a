-- One row per team: how current its numbers are, for the report, `backfills check` and BI tiles.
-- Ages are left to the reader (now - last_ok_received_at): they grow while nothing runs.
with polls as not materialized (  -- read three times, each for a few of its columns
    select * from staging.stg_supermetrics__polls
),

-- aggregates, then the latest poll's row by its id, not a sort of every poll: this runs at every
-- build over a history that only grows
latest_ids as (
    select
        team_id,
        max(poll_id) as last_poll_id,
        max(case when outcome = 'ok' then poll_id end) as last_ok_poll_id,
        max(case when outcome = 'ok' then polled_at end) as last_ok_polled_at,
        max(case when outcome = 'ok' then received_at end) as last_ok_received_at
    from polls
    group by team_id
),

latest as (
    select
        polls.team_id,
        polls.poll_id as last_poll_id,
        polls.polled_at as last_polled_at,
        polls.received_at as last_received_at,
        polls.outcome as last_outcome,
        polls.error_class as last_error_class,
        polls.error_message as last_error_message
    from polls
    inner join latest_ids on latest_ids.team_id = polls.team_id and latest_ids.last_poll_id = polls.poll_id
),

failed_since_ok as (
    -- the bound in the join, where DuckDB reads only the polls after the teams' earliest one
    select
        polls.team_id,
        count(*) as failed_polls_since_ok
    from polls
    inner join latest_ids
        on latest_ids.team_id = polls.team_id and polls.poll_id > coalesce(latest_ids.last_ok_poll_id, 0)
    where polls.outcome = 'failed'
    group by polls.team_id
),

final as (
    select
        latest.team_id,
        latest.last_poll_id,
        latest.last_polled_at,
        latest.last_received_at,
        latest.last_outcome,
        latest.last_error_class,
        latest.last_error_message,
        latest_ids.last_ok_poll_id,
        latest_ids.last_ok_polled_at,
        latest_ids.last_ok_received_at,
        coalesce(failed_since_ok.failed_polls_since_ok, 0) as failed_polls_since_ok
    from latest
    inner join latest_ids using (team_id)
    left join failed_since_ok using (team_id)
)

select * from final

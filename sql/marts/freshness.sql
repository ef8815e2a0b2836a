-- One row per team: how current its numbers are, for the report, `backfills check` and BI tiles.
-- Ages are left to the reader (now - last_ok_received_at): they grow while nothing runs.
with polls as (
    select * from staging.stg_supermetrics__polls
),

latest as (
    select distinct on (team_id)
        team_id,
        poll_id as last_poll_id,
        polled_at as last_polled_at,
        received_at as last_received_at,
        outcome as last_outcome,
        error_class as last_error_class,
        error_message as last_error_message
    from polls
    order by team_id, poll_id desc
),

latest_ok as (
    select
        team_id,
        max(poll_id) as last_ok_poll_id,
        max(polled_at) as last_ok_polled_at,
        max(received_at) as last_ok_received_at
    from polls
    where outcome = 'ok'
    group by team_id
),

failed_since_ok as (
    select
        polls.team_id,
        count(*) as failed_polls_since_ok
    from polls
    left join latest_ok using (team_id)
    where polls.outcome = 'failed' and polls.poll_id > coalesce(latest_ok.last_ok_poll_id, 0)
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
        latest_ok.last_ok_poll_id,
        latest_ok.last_ok_polled_at,
        latest_ok.last_ok_received_at,
        coalesce(failed_since_ok.failed_polls_since_ok, 0) as failed_polls_since_ok
    from latest
    left join latest_ok using (team_id)
    left join failed_since_ok using (team_id)
)

select * from final

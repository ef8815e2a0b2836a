-- One row per team: its latest successful poll, the "now" that durations of unfinished things
-- run up to (the API's clock, so a simulator's clock works too), and whether that poll's list
-- was full (100 items: older incomplete backfills are hidden).
with polls as (
    select * from staging.stg_supermetrics__polls
),

final as (
    select
        team_id,
        max(polled_at) as latest_poll_at,
        coalesce(arg_max(possibly_truncated, polled_at), false) as is_latest_poll_capped
    from polls
    where outcome = 'ok'
    group by team_id
)

select * from final

-- One row per team: its latest successful poll, the "now" that durations of unfinished things
-- run up to (the API's clock, so a simulator's clock works too), and whether that poll's list
-- was full (100 items: older incomplete backfills are hidden).
with polls as (
    select * from staging.stg_supermetrics__polls
),

final as (
    select distinct on (team_id)
        team_id,
        polled_at as latest_poll_at,
        coalesce(possibly_truncated, false) as is_latest_poll_capped
    from polls
    where outcome = 'ok'
    order by team_id, polled_at desc, poll_id desc
)

select * from final

-- One row per team: its latest successful poll, the "now" that durations of unfinished things
-- run up to (the API's clock, so a simulator's clock works too).
with polls as (
    select * from staging.stg_supermetrics__polls
),

final as (
    select
        team_id,
        max(polled_at) as latest_poll_at
    from polls
    where outcome = 'ok'
    group by team_id
)

select * from final

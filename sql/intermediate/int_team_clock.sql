-- One row per team: its latest successful poll, the "now" that durations of unfinished things
-- run up to (the API's clock, so a simulator's clock works too), and whether that poll's list
-- was full (100 items: older incomplete backfills are hidden).
-- Aggregates, not a sort of every poll: this runs at every build over a history that only grows.
with polls as not materialized (  -- read three times, each for a few of its columns
    select * from staging.stg_supermetrics__polls
    where outcome = 'ok'
),

latest_time as (
    select
        team_id,
        max(polled_at) as latest_poll_at
    from polls
    group by team_id
),

latest_poll as (
    -- of two polls at the same time, the later one
    select
        polls.team_id,
        max(polls.poll_id) as poll_id
    from polls
    inner join latest_time
        on latest_time.team_id = polls.team_id and latest_time.latest_poll_at = polls.polled_at
    group by polls.team_id
),

final as (
    select
        polls.team_id,
        polls.polled_at as latest_poll_at,
        coalesce(polls.possibly_truncated, false) as is_latest_poll_capped
    from polls
    inner join latest_poll
        on latest_poll.team_id = polls.team_id and latest_poll.poll_id = polls.poll_id
)

select * from final

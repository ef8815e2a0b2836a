-- One row per stretch of consecutive successful polls in which a backfill was listed:
-- from the poll that listed it to the poll that no longer did (null: still listed).
with events as (
    {{ scoped_rows(staging.stg_supermetrics__listing_events, backfills, poll_id) }}
),

polls as (
    select * from staging.stg_supermetrics__polls
),

paired as (
    select
        team_id,
        transfer_backfill_id,
        event,
        poll_id,
        lead(poll_id) over (partition by team_id, transfer_backfill_id order by poll_id) as next_event_poll_id
    from events
),

final as (
    select
        paired.team_id,
        paired.transfer_backfill_id,
        paired.poll_id as listed_from_poll_id,
        paired.next_event_poll_id as unlisted_at_poll_id,
        polls.polled_at as vanished_at
    from paired
    left join polls on paired.next_event_poll_id = polls.poll_id
    where paired.event = 'listed'
)

select * from final

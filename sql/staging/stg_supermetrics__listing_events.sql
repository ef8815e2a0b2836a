-- One row per backfill entering ('listed') or leaving ('unlisted') a team's incomplete list.
with source as (
    select * from supermetrics.listing_events
),

final as (
    select
        poll_id,
        team_id,
        transfer_backfill_id,
        event,
        observed_at
    from source
)

select * from final

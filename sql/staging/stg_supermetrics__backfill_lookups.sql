-- One row per lookup by id of a backfill that left the list.
with source as (
    select * from supermetrics.backfill_lookups
),

final as (
    select
        poll_id,
        team_id,
        transfer_backfill_id,
        reason,
        looked_up_at,
        outcome,
        status,
        http_status,
        error_code,
        error_message,
        request_id
    from source
)

select * from final

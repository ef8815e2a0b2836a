-- One row per poll of one team, failed ones included.
with source as (
    select * from supermetrics.polls
),

final as (
    select
        poll_id,
        team_id,
        polled_at,
        received_at,
        outcome,
        http_status,
        error_code,
        error_class,
        error_message,
        request_id,
        backfills_listed,
        possibly_truncated,
        backfills_left,
        duration_ms,
        rate_limit_remaining
    from source
)

select * from final

-- One row per poll, failed ones included: the monitor's own health.
with polls as (
    {{ scoped_rows(staging.stg_supermetrics__polls, polls) }}
),

final as (
    select
        poll_id,
        team_id,
        polled_at,
        outcome,
        http_status,
        error_code,
        error_class,
        error_message,
        request_id,
        case when outcome = 'ok' then backfills_listed end as backfills_listed,
        coalesce(possibly_truncated, false) as possibly_truncated,
        backfills_left,
        duration_ms,
        rate_limit_remaining
    from polls
)

select * from final

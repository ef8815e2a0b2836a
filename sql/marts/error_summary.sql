-- Errors grouped by their normalised pattern (see backfill_errors.error_pattern).
with errors as (
    select * from analytics.backfill_errors
),

final as (
    select
        error_pattern,
        count(*) as occurrences,
        count(distinct (team_id, transfer_backfill_id)) as backfills,
        count(distinct (team_id, transfer_id)) as transfers,
        min(first_seen_at) as first_seen_at,
        max(last_seen_at) as last_seen_at,
        min(error) as example_error
    from errors
    group by error_pattern
)

select * from final

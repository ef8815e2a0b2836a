-- Errors grouped by a normalised pattern: quoted values, dates, ids and numbers masked, so that
-- "Account 123-456-7890 not found" and "Account 987-654-3210 not found" count as one problem.
with errors as (
    select * from analytics.backfill_errors
),

normalised as (
    select
        *,
        regexp_replace(
            regexp_replace(
                regexp_replace(
                    regexp_replace(
                        regexp_replace(
                            error,
                            '''[^'']*''|"[^"]*"', '<value>', 'g'
                        ),
                        '\d{4}-\d{2}-\d{2}([T ][0-9:.]+Z?)?', '<date>', 'g'
                    ),
                    -- words mixing letters and digits: request ids, hex ids
                    '\b([A-Za-z_]+\w*\d|\d+[A-Za-z_])\w*\b', '<id>', 'g'
                ),
                '\d+(-\d+)+', '<id>', 'g'
            ),
            '\d+(\.\d+)?', '<n>', 'g'
        ) as error_pattern
    from errors
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
    from normalised
    group by error_pattern
)

select * from final

-- One row per successful poll: how many of the backfills it listed were RUNNING. Kept apart so
-- that the most a team was ever seen running is a scan of this small table, not of every
-- progress row.
with progress as (
    {{ scoped_rows(analytics.backfill_progress, polls) }}
),

final as (
    select
        team_id,
        poll_id,
        count(*) filter (where status = 'RUNNING') as running
    from progress
    group by team_id, poll_id
)

select * from final

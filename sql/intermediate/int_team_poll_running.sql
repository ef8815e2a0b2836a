-- One row per successful poll: how many of the backfills it listed were RUNNING. Kept apart so
-- that the most a team was ever seen running is a scan of this small table, not of every
-- progress row.
with progress as (
    select * from analytics.backfill_progress as scoped
    where exists (
        select 1 from staging.scope_polls as in_scope
        where in_scope.poll_id = scoped.poll_id
    )
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

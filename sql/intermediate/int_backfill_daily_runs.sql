-- One row per backfill and UTC day on which stored states saw runs done: the runs counted on the
-- day the later state was observed. Small (a row per backfill-day), so that the daily and
-- per-transfer totals never scan every stored version.
with versions as (
    select * from staging.int_backfill_versions_sequenced as scoped
    where exists (
        select 1 from staging.scope_backfills as in_scope
        where in_scope.team_id = scoped.team_id and in_scope.transfer_backfill_id = scoped.transfer_backfill_id
    )
),

final as (
    select
        team_id,
        transfer_backfill_id,
        max(transfer_id) as transfer_id,  -- one per backfill
        cast(timezone('UTC', observed_at) as date) as day,
        cast(sum(runs_completed_delta) as bigint) as runs_completed,
        cast(sum(runs_failed_delta) as bigint) as runs_failed
    from versions
    group by team_id, transfer_backfill_id, cast(timezone('UTC', observed_at) as date)
)

select * from final

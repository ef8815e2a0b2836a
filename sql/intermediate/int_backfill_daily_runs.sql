-- One row per backfill and UTC day on which stored states saw runs done: the runs counted on the
-- day the later state was observed. Small (a row per backfill-day), so that the daily and
-- per-transfer totals never scan every stored version.
with versions as (
    {{ scoped_rows(staging.int_backfill_versions_sequenced, backfills, poll_id) }}
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

-- One row per stored state of a backfill (a change since its previous state).
with source as (
    select * from supermetrics.backfill_versions
),

final as (
    select
        _dlt_id as version_id,
        poll_id,
        team_id,
        transfer_backfill_id,
        transfer_id,
        observed_at,
        source as observed_by,
        status,
        range_start_date,
        range_end_date,
        created_time,
        created_user_id,
        start_time,
        end_time,
        removed_time,
        removed_user_id,
        transfer_runs_total,
        transfer_runs_created,
        transfer_runs_completed,
        transfer_runs_failed,
        error_count,
        error_report_poll_id,
        extra_fields
    from source
)

select * from final

-- One row per error entry of a stored error report (dlt child table of backfill_versions).
with source as (
    select * from supermetrics.backfill_versions__error_report
),

final as (
    select
        _dlt_parent_id as version_id,
        transfer_run_date,
        error
    from source
)

select * from final

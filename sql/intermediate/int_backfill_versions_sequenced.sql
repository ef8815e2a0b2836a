-- Each stored state of a backfill beside its previous one: what progressed, by how many runs,
-- and which version's child rows hold its error report.
with versions as (
    select * from staging.stg_supermetrics__backfill_versions
),

sequenced as (
    select
        *,
        transfer_runs_completed + transfer_runs_failed as runs_done,
        lag(status) over backfill_history as previous_status,
        lag(transfer_runs_completed + transfer_runs_failed) over backfill_history as previous_runs_done,
        lag(transfer_runs_completed, 1, 0) over backfill_history as previous_runs_completed,
        lag(transfer_runs_failed, 1, 0) over backfill_history as previous_runs_failed
    from versions
    window backfill_history as (partition by team_id, transfer_backfill_id order by poll_id)
),

report_holders as (
    select
        team_id,
        transfer_backfill_id,
        poll_id,
        version_id
    from versions
),

final as (
    select
        sequenced.*,
        report_holders.version_id as error_report_version_id,
        coalesce(
            sequenced.status <> sequenced.previous_status
            or sequenced.runs_done <> sequenced.previous_runs_done,
            true
        ) as is_progress,
        -- a retry resets the failed count: runs only ever add up, so drops count as zero
        greatest(sequenced.transfer_runs_completed - sequenced.previous_runs_completed, 0) as runs_completed_delta,
        greatest(sequenced.transfer_runs_failed - sequenced.previous_runs_failed, 0) as runs_failed_delta
    from sequenced
    left join report_holders
        on
            report_holders.team_id = sequenced.team_id
            and report_holders.transfer_backfill_id = sequenced.transfer_backfill_id
            and report_holders.poll_id = sequenced.error_report_poll_id
)

select * from final

-- Each stored state of a backfill against its previous one: what progressed, by how many runs,
-- until which poll it held, and which state stored its error report. Narrow on purpose, only
-- what the marts read: it has a row per change (millions over a year); the full latest state is
-- in int_backfill_current_state.
with scoped_versions as (
    {{ scoped_rows(staging.stg_supermetrics__backfill_versions, backfills, poll_id) }}
),

versions as (
    select
        poll_id,
        team_id,
        transfer_backfill_id,
        transfer_id,
        observed_at,
        observed_by,
        status,
        transfer_runs_total,
        transfer_runs_created,
        transfer_runs_completed,
        transfer_runs_failed,
        error_count,
        error_report_poll_id,
        -- an error report's entries are the child rows of the version that stored it. Before the
        -- window: its sort then carries a null in most rows, not every version's id
        case when poll_id = error_report_poll_id then version_id end as stored_report_version_id
    from scoped_versions
),

sequenced as (
    select
        *,
        transfer_runs_completed + transfer_runs_failed as runs_done,
        lag(status) over backfill_history as previous_status,
        lag(transfer_runs_completed, 1, 0) over backfill_history as previous_runs_completed,
        lag(transfer_runs_failed, 1, 0) over backfill_history as previous_runs_failed,
        -- the poll of the next stored state: this one holds until then (null: still holds)
        lead(poll_id) over backfill_history as next_poll_id
    from versions
    window backfill_history as (partition by team_id, transfer_backfill_id order by poll_id)
),

attempts as (
    select
        *,
        -- a retry starts a new attempt, and the API resets transfer_runs_failed for it: seen as the
        -- status going from FAILED back to the queue or to running (not to CANCELLED: a cancel is
        -- no retry), or the failed count dropping (retried again between two polls)
        coalesce(
            previous_status = 'FAILED' and status in ('CREATED', 'SCHEDULED', 'RUNNING')
            or transfer_runs_failed < previous_runs_failed,
            false
        ) as is_new_attempt
    from sequenced
),

final as (
    select
        attempts.poll_id,
        attempts.team_id,
        attempts.transfer_backfill_id,
        attempts.transfer_id,
        attempts.observed_at,
        attempts.observed_by,
        attempts.status,
        attempts.transfer_runs_total,
        attempts.transfer_runs_created,
        attempts.transfer_runs_completed,
        attempts.transfer_runs_failed,
        attempts.error_count,
        attempts.runs_done,
        attempts.next_poll_id,
        attempts.error_report_poll_id,
        attempts.stored_report_version_id,
        coalesce(
            -- the first state: no previous status, so null, so a progress
            attempts.status <> attempts.previous_status
            or attempts.runs_done <> attempts.previous_runs_completed + attempts.previous_runs_failed,
            true
        ) as is_progress,
        -- a state that keeps its predecessor's status starts no status stretch: the status history
        -- reads only the others (a few per backfill, of thousands of states)
        coalesce(attempts.status <> attempts.previous_status, true) as is_status_change,
        -- completed runs only ever add up (a retry re-runs only the failed days)
        greatest(attempts.transfer_runs_completed - attempts.previous_runs_completed, 0) as runs_completed_delta,
        -- a new attempt's failures count from zero: its whole counter is new
        case
            when attempts.is_new_attempt then attempts.transfer_runs_failed
            else greatest(attempts.transfer_runs_failed - attempts.previous_runs_failed, 0)
        end as runs_failed_delta
    from attempts
)

select * from final

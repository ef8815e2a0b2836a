-- The stored state that began each stretch of a final or failed status (FAILED, COMPLETED,
-- CANCELLED): its first version of that status within the stretch (a final status's stretch
-- starts when the backfill vanished; its version is the lookup's). alert_events takes an event's
-- detail from it; kept per backfill, so that a run reads its scope's versions, not the status of
-- every version stored.
with status_history as (
    {{ scoped_rows(analytics.backfill_status_history, backfills) }}
),

scoped_versions as (
    {{ scoped_rows(staging.int_backfill_versions_sequenced, backfills, poll_id) }}
),

versions as (
    select * from scoped_versions
    where status in ('FAILED', 'COMPLETED', 'CANCELLED')
),

stretch_starts as (
    select
        status_history.team_id,
        status_history.transfer_backfill_id,
        status_history.stretch_number,
        min(versions.poll_id) as first_poll_id
    from status_history
    inner join versions
        on
            versions.team_id = status_history.team_id
            and versions.transfer_backfill_id = status_history.transfer_backfill_id
            and versions.status = status_history.status
            and versions.observed_at >= status_history.valid_from
            and (status_history.valid_to is null or versions.observed_at < status_history.valid_to)
    where status_history.status in ('FAILED', 'COMPLETED', 'CANCELLED')
    group by status_history.team_id, status_history.transfer_backfill_id, status_history.stretch_number
),

final as (
    select
        stretch_starts.team_id,
        stretch_starts.transfer_backfill_id,
        stretch_starts.stretch_number,
        stretch_starts.first_poll_id,
        versions.transfer_runs_total,
        versions.transfer_runs_completed,
        versions.transfer_runs_failed
    from stretch_starts
    inner join versions
        on
            versions.team_id = stretch_starts.team_id
            and versions.transfer_backfill_id = stretch_starts.transfer_backfill_id
            and versions.poll_id = stretch_starts.first_poll_id
)

select * from final

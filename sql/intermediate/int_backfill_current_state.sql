-- One row per backfill: its latest stored state and whether that state is confirmed.
-- A backfill that left the list is UNKNOWN until a lookup confirmed its state (COMPLETED,
-- CANCELLED, or still incomplete behind the 100-item cap); a 404 keeps it UNKNOWN.
with versions as (
    select * from staging.stg_supermetrics__backfill_versions
),

stretches as (
    select * from staging.int_listing_stretches
),

lookups as (
    select * from staging.stg_supermetrics__backfill_lookups
),

latest_versions as (
    select *
    from versions
    qualify row_number() over (partition by team_id, transfer_backfill_id order by poll_id desc) = 1
),

latest_stretches as (
    select *
    from stretches
    qualify row_number() over (partition by team_id, transfer_backfill_id order by listed_from_poll_id desc) = 1
),

confirmations as (
    select
        team_id,
        transfer_backfill_id,
        max(poll_id) as confirmed_at_poll_id,
        max(looked_up_at) as confirmed_at
    from lookups
    where outcome in ('final', 'incomplete')
    group by team_id, transfer_backfill_id
),

final as (
    select
        latest_versions.* exclude (version_id, error_report_poll_id),
        latest_versions.transfer_runs_completed + latest_versions.transfer_runs_failed as runs_done,
        latest_stretches.unlisted_at_poll_id,
        latest_stretches.vanished_at,
        confirmations.confirmed_at,
        case
            when latest_stretches.unlisted_at_poll_id is null then latest_versions.status
            when confirmations.confirmed_at_poll_id >= latest_stretches.unlisted_at_poll_id
                then latest_versions.status
            else 'UNKNOWN'
        end as current_status
    from latest_versions
    left join latest_stretches
        on
            latest_stretches.team_id = latest_versions.team_id
            and latest_stretches.transfer_backfill_id = latest_versions.transfer_backfill_id
    left join confirmations
        on
            confirmations.team_id = latest_versions.team_id
            and confirmations.transfer_backfill_id = latest_versions.transfer_backfill_id
)

select * from final

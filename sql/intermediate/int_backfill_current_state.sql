-- One row per backfill: its latest stored state and whether that state is confirmed.
-- A backfill that left the list is UNKNOWN until a lookup confirmed its state (COMPLETED,
-- CANCELLED, or still incomplete behind the 100-item cap); a 404 keeps it UNKNOWN, and a 404
-- after "still incomplete" makes it UNKNOWN again from that answer (the API forgot it meanwhile).
with versions as not materialized (  -- read twice: see latest_versions
    {{ scoped_rows(staging.stg_supermetrics__backfill_versions, backfills, poll_id) }}
),

stretches as (
    {{ scoped_rows(staging.int_listing_stretches, backfills) }}
),

lookups as (
    {{ scoped_rows(staging.stg_supermetrics__backfill_lookups, backfills, poll_id) }}
),

-- each backfill's latest poll first, then its version's row: a narrow aggregate and a join cost a
-- fraction of keeping every column of the latest row while grouping millions
latest_polls as (
    select team_id, transfer_backfill_id, max(poll_id) as poll_id
    from versions
    group by team_id, transfer_backfill_id
),

latest_versions as (
    select versions.*
    from versions
    inner join latest_polls
        on
            latest_polls.team_id = versions.team_id
            and latest_polls.transfer_backfill_id = versions.transfer_backfill_id
            and latest_polls.poll_id = versions.poll_id
),

latest_stretches as (
    select distinct on (team_id, transfer_backfill_id) *
    from stretches
    order by team_id, transfer_backfill_id, listed_from_poll_id desc
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

-- the answered lookups (not_found included) after the backfill's last incomplete confirmation
answered_after_confirmation as (
    select
        lookups.team_id,
        lookups.transfer_backfill_id,
        min(lookups.looked_up_at) filter (where lookups.outcome = 'not_found') as forgotten_at,
        min(lookups.poll_id) filter (where lookups.outcome = 'not_found') as forgotten_at_poll_id,
        bool_or(lookups.outcome = 'not_found') as is_forgotten
    from lookups
    left join confirmations
        on
            confirmations.team_id = lookups.team_id
            and confirmations.transfer_backfill_id = lookups.transfer_backfill_id
    where lookups.poll_id > coalesce(confirmations.confirmed_at_poll_id, -1)
    group by lookups.team_id, lookups.transfer_backfill_id
),

final as (
    select
        latest_versions.poll_id,
        latest_versions.team_id,
        latest_versions.transfer_backfill_id,
        latest_versions.transfer_id,
        latest_versions.observed_at,
        latest_versions.observed_by,
        latest_versions.status,
        latest_versions.range_start_date,
        latest_versions.range_end_date,
        latest_versions.created_time,
        latest_versions.created_user_id,
        latest_versions.start_time,
        latest_versions.end_time,
        latest_versions.removed_time,
        latest_versions.removed_user_id,
        latest_versions.transfer_runs_total,
        latest_versions.transfer_runs_created,
        latest_versions.transfer_runs_completed,
        latest_versions.transfer_runs_failed,
        latest_versions.error_count,
        latest_versions.extra_fields,
        latest_versions.transfer_runs_completed + latest_versions.transfer_runs_failed as runs_done,
        latest_stretches.unlisted_at_poll_id,
        latest_stretches.vanished_at,
        confirmations.confirmed_at,
        case
            when latest_stretches.unlisted_at_poll_id is null then latest_versions.status
            when latest_versions.status in ('COMPLETED', 'CANCELLED') then latest_versions.status
            when
                confirmations.confirmed_at_poll_id >= latest_stretches.unlisted_at_poll_id
                and not coalesce(answered_after_confirmation.is_forgotten, false)
                then latest_versions.status
            else 'UNKNOWN'
        end as current_status,
        -- when an UNKNOWN backfill stopped being known: it left the list, or it was confirmed
        -- incomplete behind the cap and then the API answered 404
        case
            when confirmations.confirmed_at_poll_id >= latest_stretches.unlisted_at_poll_id
                then answered_after_confirmation.forgotten_at
            else latest_stretches.vanished_at
        end as unknown_since,
        case
            when confirmations.confirmed_at_poll_id >= latest_stretches.unlisted_at_poll_id
                then answered_after_confirmation.forgotten_at_poll_id
            else latest_stretches.unlisted_at_poll_id
        end as unknown_since_poll_id
    from latest_versions
    left join latest_stretches
        on
            latest_stretches.team_id = latest_versions.team_id
            and latest_stretches.transfer_backfill_id = latest_versions.transfer_backfill_id
    left join confirmations
        on
            confirmations.team_id = latest_versions.team_id
            and confirmations.transfer_backfill_id = latest_versions.transfer_backfill_id
    left join answered_after_confirmation
        on
            answered_after_confirmation.team_id = latest_versions.team_id
            and answered_after_confirmation.transfer_backfill_id = latest_versions.transfer_backfill_id
)

select * from final

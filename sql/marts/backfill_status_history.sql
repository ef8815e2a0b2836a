-- One row per contiguous stretch of one status of a backfill, by observed poll times.
-- A final status (COMPLETED, CANCELLED) starts when the backfill vanished from the list, not
-- when the lookup confirmed it, unless a lookup after the vanishing still found it incomplete
-- (hidden by the 100-item cap): then it starts at the lookup that found it final. An
-- unconfirmed one is an UNKNOWN stretch from the moment it stopped being known.
with versions as (
    select * from staging.int_backfill_versions_sequenced
    semi join staging.scope_backfills using (team_id, transfer_backfill_id)
),

lookups as (
    select * from staging.stg_supermetrics__backfill_lookups
    semi join staging.scope_backfills using (team_id, transfer_backfill_id)
),

stretches as (
    select * from staging.int_listing_stretches
    semi join staging.scope_backfills using (team_id, transfer_backfill_id)
),

current_state as (
    select * from staging.int_backfill_current_state
    semi join staging.scope_backfills using (team_id, transfer_backfill_id)
),

team_clock as (
    select * from staging.int_team_clock
),

version_observations as (
    select
        versions.team_id,
        versions.transfer_backfill_id,
        versions.poll_id,
        versions.status,
        case
            when
                versions.observed_by = 'lookup'
                and versions.status in ('COMPLETED', 'CANCELLED')
                and not exists (
                    select 1
                    from lookups
                    where
                        lookups.team_id = versions.team_id
                        and lookups.transfer_backfill_id = versions.transfer_backfill_id
                        and lookups.outcome = 'incomplete'
                        and lookups.poll_id >= stretches.unlisted_at_poll_id
                        and lookups.poll_id < versions.poll_id
                )
                then coalesce(stretches.vanished_at, versions.observed_at)
            else versions.observed_at
        end as observed_at
    from versions
    asof left join stretches
        on
            stretches.team_id = versions.team_id
            and stretches.transfer_backfill_id = versions.transfer_backfill_id
            and versions.poll_id >= stretches.unlisted_at_poll_id
),

unknown_observations as (
    select
        team_id,
        transfer_backfill_id,
        unknown_since_poll_id as poll_id,
        'UNKNOWN' as status,
        unknown_since as observed_at
    from current_state
    where current_status = 'UNKNOWN'
),

observations as (
    select * from version_observations
    union all
    select * from unknown_observations
),

flagged as (
    select
        *,
        coalesce(status <> lag(status) over backfill_history, true) as starts_stretch
    from observations
    window backfill_history as (partition by team_id, transfer_backfill_id order by poll_id, observed_at)
),

numbered as (
    select
        *,
        cast(sum(case when starts_stretch then 1 else 0 end) over (
            partition by team_id, transfer_backfill_id order by poll_id, observed_at
            rows between unbounded preceding and current row
        ) as integer) as stretch_number
    from flagged
),

status_stretches as (
    select
        team_id,
        transfer_backfill_id,
        stretch_number,
        any_value(status) as status,
        min(observed_at) as valid_from
    from numbered
    group by team_id, transfer_backfill_id, stretch_number
),


final as (
    select
        status_stretches.team_id,
        status_stretches.transfer_backfill_id,
        status_stretches.status,
        status_stretches.valid_from,
        lead(status_stretches.valid_from) over backfill_history as valid_to,
        date_diff(
            'second',
            status_stretches.valid_from,
            coalesce(
                lead(status_stretches.valid_from) over backfill_history,
                -- a current stretch of an unfinished status lasts up to the latest poll
                case
                    when status_stretches.status not in ('COMPLETED', 'CANCELLED', 'UNKNOWN')
                        then team_clock.latest_poll_at
                end
            )
        ) as duration_seconds,
        status_stretches.stretch_number
    from status_stretches
    left join team_clock on team_clock.team_id = status_stretches.team_id
    window backfill_history as (
        partition by status_stretches.team_id, status_stretches.transfer_backfill_id
        order by status_stretches.stretch_number
    )
)

select * from final

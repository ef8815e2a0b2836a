-- One row per contiguous stretch of one status of a backfill, by observed poll times.
-- A final status (COMPLETED, CANCELLED) starts when the backfill vanished from the list, not
-- when the lookup confirmed it, unless a lookup after the vanishing still found it incomplete
-- (hidden by the 100-item cap): then it starts at the lookup that found it final. An
-- unconfirmed one is an UNKNOWN stretch from the moment it stopped being known.
with versions as not materialized (  -- read twice: a scan each costs less than a copy
    {{ scoped_rows(staging.int_backfill_versions_sequenced, backfills, poll_id) }}
),

lookups as (
    {{ scoped_rows(staging.stg_supermetrics__backfill_lookups, backfills, poll_id) }}
),

stretches as (
    {{ scoped_rows(staging.int_listing_stretches, backfills) }}
),

current_state as (
    {{ scoped_rows(staging.int_backfill_current_state, backfills) }}
),

team_clock as (
    select * from staging.int_team_clock
),

-- the versions that may start when the backfill vanished: a lookup's final state (a few per
-- backfill at most; every other version starts when it was observed)
confirmed_final as (
    select team_id, transfer_backfill_id, poll_id, observed_at
    from versions
    where observed_by = 'lookup' and status in ('COMPLETED', 'CANCELLED')
),

-- each one's latest stretch unlisted at or before it: an as-of join, written as a running max
-- over both sides in poll order (DuckDB and PostgreSQL run it alike; a stretch's unlisting sorts
-- before a version of the same poll)
unlisting_timeline as (
    select team_id, transfer_backfill_id, unlisted_at_poll_id as poll_id, 0 as is_version
    from stretches
    where unlisted_at_poll_id is not null
    union all
    select team_id, transfer_backfill_id, poll_id, 1 as is_version
    from confirmed_final
),

version_unlistings as (
    select
        team_id,
        transfer_backfill_id,
        poll_id,
        is_version,
        max(case when is_version = 0 then poll_id end) over (
            partition by team_id, transfer_backfill_id order by poll_id, is_version
            rows between unbounded preceding and current row
        ) as unlisted_at_poll_id
    from unlisting_timeline
),

final_observed as (
    select
        confirmed_final.team_id,
        confirmed_final.transfer_backfill_id,
        confirmed_final.poll_id,
        case
            when not exists (
                select 1
                from lookups
                where
                    lookups.team_id = confirmed_final.team_id
                    and lookups.transfer_backfill_id = confirmed_final.transfer_backfill_id
                    and lookups.outcome = 'incomplete'
                    and lookups.poll_id >= stretches.unlisted_at_poll_id
                    and lookups.poll_id < confirmed_final.poll_id
            )
                then coalesce(stretches.vanished_at, confirmed_final.observed_at)
            else confirmed_final.observed_at
        end as observed_at
    from confirmed_final
    left join version_unlistings
        on
            version_unlistings.team_id = confirmed_final.team_id
            and version_unlistings.transfer_backfill_id = confirmed_final.transfer_backfill_id
            and version_unlistings.poll_id = confirmed_final.poll_id
            and version_unlistings.is_version = 1
    left join stretches
        on
            stretches.team_id = confirmed_final.team_id
            and stretches.transfer_backfill_id = confirmed_final.transfer_backfill_id
            and stretches.unlisted_at_poll_id = version_unlistings.unlisted_at_poll_id
),

-- the states that may start or move a stretch: a change of status, and a lookup's final state
-- (it may start when the backfill vanished). A state that repeats its predecessor's status was
-- observed after it, so it neither starts a stretch nor moves one's start (an UNKNOWN observation
-- is the current state's, after every version: it never falls between two)
version_observations as (
    select
        versions.team_id,
        versions.transfer_backfill_id,
        versions.poll_id,
        versions.status,
        coalesce(final_observed.observed_at, versions.observed_at) as observed_at
    from versions
    left join final_observed
        on
            final_observed.team_id = versions.team_id
            and final_observed.transfer_backfill_id = versions.transfer_backfill_id
            and final_observed.poll_id = versions.poll_id
    where versions.is_status_change or final_observed.poll_id is not null
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
        min(status) as status,  -- one per stretch
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
        cast(floor(extract(epoch from coalesce(
            lead(status_stretches.valid_from) over backfill_history,
            -- a current stretch of an unfinished status lasts up to the latest poll
            case
                when status_stretches.status not in ('COMPLETED', 'CANCELLED', 'UNKNOWN')
                    then team_clock.latest_poll_at
            end
        ) - status_stretches.valid_from)) as bigint) as duration_seconds,
        status_stretches.stretch_number
    from status_stretches
    left join team_clock on team_clock.team_id = status_stretches.team_id
    window backfill_history as (
        partition by status_stretches.team_id, status_stretches.transfer_backfill_id
        order by status_stretches.stretch_number
    )
)

select * from final

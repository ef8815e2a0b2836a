-- One row per successful poll and backfill listed in it, in the state the poll saw.
-- A poll's rows depend only on what was stored up to that poll: a build adds the rows of the
-- polls stored since the last one (staging.scope_polls).
with polls as (
    select * from staging.stg_supermetrics__polls
    where outcome = 'ok'
),

new_polls as (
    select polls.*
    from polls
    semi join staging.scope_polls using (poll_id)
),

first_new_poll as (
    select coalesce(min(poll_id), (select max(poll_id) + 1 from polls)) as poll_id from new_polls
),

stretches as (
    -- the stretches that reach into the new polls
    select * from staging.int_listing_stretches
    where coalesce(unlisted_at_poll_id, (select max(poll_id) + 1 from polls)) > (select poll_id from first_new_poll)
),

transfers as (
    select * from analytics.transfers
),

versions as (
    select * from staging.int_backfill_versions_sequenced
    semi join stretches using (team_id, transfer_backfill_id)
),

listed_poll_ids as (
    select
        team_id,
        transfer_backfill_id,
        unnest(range(
            greatest(listed_from_poll_id, (select poll_id from first_new_poll)),
            coalesce(unlisted_at_poll_id, (select max(poll_id) + 1 from polls))
        )) as poll_id
    from stretches
),

listed as (
    select
        listed_poll_ids.team_id,
        listed_poll_ids.transfer_backfill_id,
        polls.poll_id,
        polls.polled_at
    from listed_poll_ids
    inner join new_polls as polls
        on
            polls.poll_id = listed_poll_ids.poll_id
            and polls.team_id = listed_poll_ids.team_id
),

with_state as (
    select
        listed.*,
        versions.transfer_id,
        versions.status,
        versions.transfer_runs_total,
        versions.transfer_runs_created,
        versions.transfer_runs_completed,
        versions.transfer_runs_failed,
        versions.error_count,
        versions.poll_id as version_poll_id
    from listed
    asof left join versions
        on
            versions.team_id = listed.team_id
            and versions.transfer_backfill_id = listed.transfer_backfill_id
            and listed.poll_id >= versions.poll_id
),

progress_rows as (
    select
        poll_id,
        polled_at,
        team_id,
        transfer_backfill_id,
        transfer_id,
        status,
        transfer_runs_total,
        transfer_runs_created,
        transfer_runs_completed,
        transfer_runs_failed,
        round(
            100.0 * (transfer_runs_completed + transfer_runs_failed) / nullif(transfer_runs_total, 0), 2
        ) as progress_pct,
        error_count,
        version_poll_id
    from with_state
),

final as (
    select
        progress_rows.*,
        transfers.transfer_name
    from progress_rows
    left join transfers
        on
            transfers.team_id = progress_rows.team_id
            and transfers.transfer_id = progress_rows.transfer_id
)

select * from final

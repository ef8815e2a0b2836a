-- One row per backfill ever seen: its latest state, durations, progress rate, ETA and stall flag.
-- Rebuilt for the backfills that changed and those still running (staging.scope_backfills).
with current_state as (
    {{ scoped_rows(staging.int_backfill_current_state, backfills) }}
),

versions as not materialized (  -- read three times: a scan each costs less than a copy
    {{ scoped_rows(staging.int_backfill_versions_sequenced, backfills, poll_id) }}
),

progress as (
    {{ scoped_rows(analytics.backfill_progress, backfills, poll_id) }}
),

status_history as (
    {{ scoped_rows(analytics.backfill_status_history, backfills) }}
),

errors as (
    {{ scoped_rows(analytics.backfill_errors, backfills) }}
),

runs as (
    {{ scoped_rows(staging.int_backfill_runs, backfills) }}
),

transfers as (
    select * from analytics.transfers
),

team_clock as (
    select * from staging.int_team_clock
),

running_per_poll as (
    select * from staging.int_team_poll_running
),

running_now as (
    -- the current states of all the team's backfills, lookups included: the oldest backfills,
    -- the running ones among them, are the first a full list (100 items) hides
    select
        team_id,
        count(*) filter (where current_status = 'RUNNING') as running_now
    from staging.int_backfill_current_state
    group by team_id
),

team_slots as (
    -- the API does not say how many backfills a team may run at once: the most ever seen RUNNING
    -- together stands for it
    select
        running_now.team_id,
        greatest(max(running_per_poll.running), running_now.running_now) as max_running_seen,
        running_now.running_now
    from running_now
    left join running_per_poll on running_per_poll.team_id = running_now.team_id
    group by running_now.team_id, running_now.running_now
),


first_running as (
    -- the first time it was seen RUNNING, and the runs done by then: the start of the rate
    select distinct on (team_id, transfer_backfill_id)
        team_id,
        transfer_backfill_id,
        observed_at as first_running_at,
        runs_done as runs_done_at_first_running
    from versions
    where status = 'RUNNING'
    order by team_id, transfer_backfill_id, poll_id
),

first_version as (
    select distinct on (team_id, transfer_backfill_id)
        team_id,
        transfer_backfill_id,
        observed_by as learnt_from
    from versions
    order by team_id, transfer_backfill_id, poll_id
),

version_facts as (
    select
        version_totals.*,
        first_running.first_running_at,
        first_running.runs_done_at_first_running,
        first_version.learnt_from
    from (
        select
            team_id,
            transfer_backfill_id,
            min(observed_at) as first_seen_at,
            max(case when observed_by = 'latest' then observed_at end) as found_by_latest_at,
            max(case when is_progress then observed_at end) as last_progress_at,
            -- every failure observed, those of attempts a retry reset included
            cast(sum(runs_failed_delta) as bigint) as runs_failed_all_attempts
        from versions
        group by team_id, transfer_backfill_id
    ) as version_totals
    left join first_running
        on
            first_running.team_id = version_totals.team_id
            and first_running.transfer_backfill_id = version_totals.transfer_backfill_id
    left join first_version
        on
            first_version.team_id = version_totals.team_id
            and first_version.transfer_backfill_id = version_totals.transfer_backfill_id
),

run_facts as (
    -- exact, from the runs endpoint: every attempt, the rows, the first and last run
    select
        team_id,
        transfer_backfill_id,
        count(*) as runs_known,
        count(*) filter (where status = 'FAILED') as run_attempts_failed,
        cast(sum(total_rows) filter (where status = 'COMPLETED') as bigint) as rows_loaded,
        min(created_time) as first_run_at,
        case when bool_and(ended_time is not null) then max(ended_time) end as last_run_ended_at
    from runs
    group by team_id, transfer_backfill_id
),

last_listed as (
    select
        team_id,
        transfer_backfill_id,
        max(polled_at) as last_listed_at
    from progress
    group by team_id, transfer_backfill_id
),

error_counts as (
    select
        team_id,
        transfer_backfill_id,
        count(*) as error_count
    from errors
    group by team_id, transfer_backfill_id
),

current_failed_stretch as (
    select
        team_id,
        transfer_backfill_id,
        valid_from as failed_since
    from status_history
    where valid_to is null and status = 'FAILED'
),

joined as (
    select
        current_state.*,
        current_state.current_status not in ('COMPLETED', 'CANCELLED', 'UNKNOWN') as is_incomplete,
        version_facts.first_seen_at,
        version_facts.last_progress_at,
        version_facts.first_running_at,
        version_facts.runs_done_at_first_running,
        version_facts.runs_failed_all_attempts,
        version_facts.learnt_from,
        transfers.transfer_name,
        coalesce(run_facts.runs_known, 0) as runs_known,
        coalesce(run_facts.run_attempts_failed, 0) as run_attempts_failed,
        run_facts.rows_loaded,
        run_facts.first_run_at,
        run_facts.last_run_ended_at,
        greatest(
            last_listed.last_listed_at, current_state.confirmed_at, version_facts.found_by_latest_at
        ) as last_seen_at,
        case
            when current_state.current_status in ('COMPLETED', 'CANCELLED')
                then coalesce(current_state.end_time, current_state.removed_time)
        end as finished_at,
        coalesce(error_counts.error_count, 0) as error_count_ever,
        current_failed_stretch.failed_since,
        team_clock.latest_poll_at,
        coalesce(
            current_state.current_status = 'SCHEDULED'
            and (
                team_slots.running_now >= team_slots.max_running_seen
                -- over 100 incomplete: the oldest, the running ones among them, are hidden, and
                -- a queue that long is waiting
                or team_clock.is_latest_poll_capped
            ),
            false
        ) as is_waiting_for_slot
    from current_state
    left join version_facts
        on
            version_facts.team_id = current_state.team_id
            and version_facts.transfer_backfill_id = current_state.transfer_backfill_id
    left join last_listed
        on
            last_listed.team_id = current_state.team_id
            and last_listed.transfer_backfill_id = current_state.transfer_backfill_id
    left join error_counts
        on
            error_counts.team_id = current_state.team_id
            and error_counts.transfer_backfill_id = current_state.transfer_backfill_id
    left join current_failed_stretch
        on
            current_failed_stretch.team_id = current_state.team_id
            and current_failed_stretch.transfer_backfill_id = current_state.transfer_backfill_id
    left join run_facts
        on
            run_facts.team_id = current_state.team_id
            and run_facts.transfer_backfill_id = current_state.transfer_backfill_id
    left join transfers
        on
            transfers.team_id = current_state.team_id
            and transfers.transfer_id = current_state.transfer_id
    left join team_clock on team_clock.team_id = current_state.team_id
    left join team_slots on team_slots.team_id = current_state.team_id
),

rates as (
    select
        *,
        -- the rate is measured up to the latest poll while running, up to the end when finished,
        -- and up to the first poll that saw it FAILED (its runs stopped there)
        case
            when current_status = 'FAILED' then failed_since
            when is_incomplete then latest_poll_at
            when current_status in ('COMPLETED', 'CANCELLED') then finished_at
        end as rate_measured_until
    from joined
),

with_rate as (
    select
        *,
        -- enough data: at least two runs done over at least ten minutes of observed running
        case
            when runs_done - runs_done_at_first_running >= 2
                and extract(epoch from rate_measured_until - first_running_at) >= 600
                then 3600.0 * (runs_done - runs_done_at_first_running)
                / extract(epoch from rate_measured_until - first_running_at)
        end as runs_per_hour
    from rates
),

final as (
    select
        team_id,
        transfer_backfill_id,
        transfer_id,
        range_start_date,
        range_end_date,
        cast(range_end_date - range_start_date as integer) + 1 as range_days,
        current_status as status,
        is_incomplete,
        created_time,
        created_user_id,
        start_time,
        end_time,
        removed_time,
        removed_user_id,
        first_seen_at,
        last_seen_at,
        vanished_at,
        finished_at,
        cast(floor(extract(epoch from start_time - created_time)) as bigint) as queue_seconds,
        case
            when end_time is not null then cast(floor(extract(epoch from end_time - start_time)) as bigint)
            when current_status = 'FAILED' then cast(floor(extract(epoch from failed_since - start_time)) as bigint)
            when is_incomplete then cast(floor(extract(epoch from latest_poll_at - start_time)) as bigint)
        end as run_seconds,
        transfer_runs_total,
        transfer_runs_created,
        transfer_runs_completed,
        transfer_runs_failed,
        -- a double on every engine (PostgreSQL's and Spark's round gives a decimal)
        cast(round(100.0 * runs_done / nullif(transfer_runs_total, 0), 2) as double precision) as progress_pct,
        runs_failed_all_attempts,
        cast(runs_failed_all_attempts as double precision)
        / nullif(transfer_runs_completed + runs_failed_all_attempts, 0) as failure_rate,
        cast(transfer_runs_failed as double precision) / nullif(runs_done, 0) as failure_rate_current_attempt,
        error_count_ever as error_count,
        runs_per_hour,
        case
            when current_status = 'RUNNING' and runs_per_hour > 0
                then latest_poll_at
                + cast(floor(3600 * (transfer_runs_total - runs_done) / runs_per_hour + 0.5) as bigint) * interval '1 second'
        end as eta,
        is_waiting_for_slot,
        coalesce(
            is_incomplete
            and current_status <> 'FAILED'
            and not is_waiting_for_slot
            -- seen without progress for that long: a backfill hidden behind the cap is judged by
            -- its last lookup, not by how long nobody looked
            and extract(epoch from last_seen_at - last_progress_at) > 3600 * {{ stall_after_hours }},
            false
        ) as is_stalled,
        last_progress_at,
        extra_fields,
        transfer_name,
        learnt_from,
        runs_known,
        run_attempts_failed,
        rows_loaded,
        first_run_at,
        last_run_ended_at
    from with_rate
)

select * from final

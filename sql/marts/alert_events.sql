-- One row per event worth telling people about, as the stored history shows it now: a backfill
-- FAILED, COMPLETED or CANCELLED (one per stretch of that status), stalled, running long; a
-- team's polls failing, no successful poll for a while, the rate-limit budget low. An event's
-- event_id never changes once it is true; the alert outbox (pipelines/alerts) records each one
-- once, in the build that made it true, and delivers it after.
with backfills as (
    select * from analytics.backfills
),

status_history as (
    select * from analytics.backfill_status_history
),

stretch_starts as (
    -- the stored state that began each stretch of a final or failed status
    select * from staging.int_final_stretch_starts
),

transfer_rates as (
    select * from analytics.transfer_failure_rates
),

freshness as (
    select * from analytics.freshness
),

polls as (
    select * from analytics.polls
    where outcome = 'ok' and rate_limit_remaining is not null
),

finished as (
    -- every stretch of a final or failed status: a retried backfill that fails again is a new event.
    -- Its detail is the state that began the stretch, never the backfill's current one: a retry
    -- resets the failed count, and an event's text must not change once it happened
    select
        lower(status_history.status) as kind,
        status_history.team_id,
        backfills.transfer_id,
        backfills.transfer_name,
        status_history.transfer_backfill_id,
        status_history.status,
        status_history.valid_from as occurred_at,
        cast(floor(extract(epoch from status_history.valid_from)) as bigint) as since,
        case status_history.status
            when 'FAILED' then
                concat(
                    cast(stretch_starts.transfer_runs_failed as varchar), ' of ',
                    cast(stretch_starts.transfer_runs_total as varchar), ' runs failed'
                )
            else
                concat(
                    cast(stretch_starts.transfer_runs_completed as varchar), ' of ',
                    cast(stretch_starts.transfer_runs_total as varchar), ' runs completed'
                )
        end as detail
    from status_history
    inner join backfills
        on
            backfills.team_id = status_history.team_id
            and backfills.transfer_backfill_id = status_history.transfer_backfill_id
    inner join stretch_starts
        on
            stretch_starts.team_id = status_history.team_id
            and stretch_starts.transfer_backfill_id = status_history.transfer_backfill_id
            and stretch_starts.stretch_number = status_history.stretch_number
    where status_history.status in ('FAILED', 'COMPLETED', 'CANCELLED')
),

stalled as (
    select
        'stalled' as kind,
        team_id,
        transfer_id,
        transfer_name,
        transfer_backfill_id,
        status,
        last_progress_at + cast(3600 * {{ stall_after_hours }} as bigint) * interval '1 second' as occurred_at,
        cast(floor(extract(epoch from last_progress_at)) as bigint) as since,
        concat(
            'no progress for ',
            cast(cast(floor(extract(epoch from last_seen_at - last_progress_at) / 60) as bigint) as varchar),
            ' minutes'
        ) as detail
    from backfills
    where is_stalled
),

running_long as (
    select
        'running_long' as kind,
        backfills.team_id,
        backfills.transfer_id,
        backfills.transfer_name,
        backfills.transfer_backfill_id,
        backfills.status,
        backfills.start_time
        + cast(floor({{ running_long_factor }} * transfer_rates.median_run_seconds + 0.5) as bigint) * interval '1 second'
            as occurred_at,
        cast(floor(extract(epoch from backfills.start_time)) as bigint) as since,
        concat(
            'running for ', cast(cast(floor(backfills.run_seconds / 60.0 + 0.5) as bigint) as varchar),
            ' minutes, the transfer''s median is ',
            cast(cast(floor(transfer_rates.median_run_seconds / 60.0 + 0.5) as bigint) as varchar), ' minutes'
        ) as detail
    from backfills
    inner join transfer_rates
        on
            transfer_rates.team_id = backfills.team_id
            and transfer_rates.transfer_id = backfills.transfer_id
    where
        backfills.status = 'RUNNING'
        and transfer_rates.median_run_seconds > 0
        and backfills.run_seconds > {{ running_long_factor }} * transfer_rates.median_run_seconds
),

polls_failing as (
    select
        'polls_failing' as kind,
        team_id,
        cast(null as bigint) as transfer_id,
        cast(null as varchar) as transfer_name,
        cast(null as bigint) as transfer_backfill_id,
        last_outcome as status,
        last_polled_at as occurred_at,
        coalesce(last_ok_poll_id, 0) as since,
        concat(
            cast(failed_polls_since_ok as varchar), ' polls failed in a row: ', coalesce(last_error_message, '')
        ) as detail
    from freshness
    where failed_polls_since_ok >= {{ polls_failing_after }}
),

no_success as (
    select
        'no_success' as kind,
        freshness.team_id,
        cast(null as bigint) as transfer_id,
        cast(null as varchar) as transfer_name,
        cast(null as bigint) as transfer_backfill_id,
        freshness.last_outcome as status,
        freshness.last_polled_at as occurred_at,
        coalesce(freshness.last_ok_poll_id, 0) as since,
        concat(
            'no successful poll for ',
            cast(cast(floor(extract(epoch from freshness.last_polled_at - coalesce(
                freshness.last_ok_polled_at,
                (select min(all_polls.polled_at) from analytics.polls as all_polls where all_polls.team_id = freshness.team_id)
            )) / 60) as bigint) as varchar),
            ' minutes (', cast(freshness.failed_polls_since_ok as varchar), ' failed polls)'
        ) as detail
    from freshness
    where
        freshness.last_outcome = 'failed'
        and extract(epoch from freshness.last_polled_at - coalesce(
            freshness.last_ok_polled_at,
            (select min(all_polls.polled_at) from analytics.polls as all_polls where all_polls.team_id = freshness.team_id)
        )) > 60 * {{ no_success_minutes }}
),

budget as (
    -- each successful poll, with the last one before it whose budget was not low: a low stretch
    -- (an episode) is named after its first poll
    select
        team_id,
        poll_id,
        polled_at,
        rate_limit_remaining,
        max(case when rate_limit_remaining >= {{ rate_limit_below }} then poll_id end) over (
            partition by team_id order by poll_id rows between unbounded preceding and current row
        ) as last_good_poll_id
    from polls
),

latest_budget as (
    select distinct on (team_id) *
    from budget
    order by team_id, poll_id desc
),

rate_budget_low as (
    select
        'rate_budget_low' as kind,
        latest_budget.team_id,
        cast(null as bigint) as transfer_id,
        cast(null as varchar) as transfer_name,
        cast(null as bigint) as transfer_backfill_id,
        'ok' as status,
        min(budget.polled_at) as occurred_at,
        min(budget.poll_id) as since,
        concat(
            cast(min(latest_budget.rate_limit_remaining) as varchar), ' requests left (X-RateLimit-Remaining)'
        ) as detail
    from latest_budget
    inner join budget
        on
            budget.team_id = latest_budget.team_id
            and budget.poll_id > coalesce(latest_budget.last_good_poll_id, 0)
    where latest_budget.rate_limit_remaining < {{ rate_limit_below }}
    group by latest_budget.team_id
),

events as (
    select * from finished
    union all
    select * from stalled
    union all
    select * from running_long
    union all
    select * from polls_failing
    union all
    select * from no_success
    union all
    select * from rate_budget_low
),

final as (
    select
        concat_ws(
            ':', kind, cast(team_id as varchar), coalesce(cast(transfer_backfill_id as varchar), '-'), cast(since as varchar)
        ) as event_id,
        kind,
        team_id,
        transfer_id,
        transfer_name,
        transfer_backfill_id,
        status,
        occurred_at,
        detail
    from events
)

select * from final

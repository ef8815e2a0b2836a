-- One row per transfer: how its backfills went, how often its runs fail, how long they take.
with backfills as (
    select * from analytics.backfills
),

daily_runs as (
    select * from staging.int_backfill_daily_runs
),

errors as (
    select * from analytics.backfill_errors
),

runs as (
    select * from analytics.backfill_runs
),

transfers as (
    select * from analytics.transfers
),

exact_runs as (
    -- from the runs endpoint: every attempt, with durations to the second
    select
        team_id,
        transfer_id,
        count(*) filter (where status = 'COMPLETED') as runs_completed,
        count(*) filter (where status = 'FAILED') as runs_failed,
        percentile_cont(0.5) within group (order by duration_seconds)
            filter (where status = 'COMPLETED') as median_seconds,
        percentile_cont(0.95) within group (order by duration_seconds)
            filter (where status = 'COMPLETED') as p95_seconds
    from runs
    group by team_id, transfer_id
),

observed_runs as (
    -- every run outcome ever observed, failures that a retry later reset included
    select
        team_id,
        transfer_id,
        cast(sum(runs_completed) as bigint) as runs_completed,
        cast(sum(runs_failed) as bigint) as runs_failed
    from daily_runs
    group by team_id, transfer_id
),

last_errors as (
    -- the error first seen most recently; ties (one poll reports several) go to the latest run
    -- date, then the error text, so that the answer never depends on row order
    select distinct on (team_id, transfer_id)
        team_id,
        transfer_id,
        error as last_error
    from errors
    order by team_id, transfer_id, first_seen_at desc, transfer_run_date desc, error desc
),

per_transfer as (
    select
        team_id,
        transfer_id,
        count(*) as backfills,
        count(*) filter (where is_incomplete) as backfills_incomplete,
        count(*) filter (where status = 'COMPLETED') as backfills_completed,
        count(*) filter (where status = 'CANCELLED') as backfills_cancelled,
        count(*) filter (where status = 'FAILED') as backfills_failed,
        percentile_cont(0.5) within group (order by run_seconds)
            filter (where status = 'COMPLETED') as median_run_seconds,
        percentile_cont(0.95) within group (order by run_seconds)
            filter (where status = 'COMPLETED') as p95_run_seconds,
        max(created_time) as last_backfill_created_at
    from backfills
    group by team_id, transfer_id
),

final as (
    select
        per_transfer.team_id,
        per_transfer.transfer_id,
        per_transfer.backfills,
        per_transfer.backfills_incomplete,
        per_transfer.backfills_completed,
        per_transfer.backfills_cancelled,
        per_transfer.backfills_failed,
        coalesce(observed_runs.runs_completed, 0) as runs_completed,
        coalesce(observed_runs.runs_failed, 0) as runs_failed,
        cast(observed_runs.runs_failed as double precision)
        / nullif(observed_runs.runs_completed + observed_runs.runs_failed, 0) as failure_rate,
        per_transfer.median_run_seconds,
        per_transfer.p95_run_seconds,
        last_errors.last_error,
        per_transfer.last_backfill_created_at,
        transfers.transfer_name,
        transfers.data_source,
        coalesce(exact_runs.runs_completed, 0) as exact_runs_completed,
        coalesce(exact_runs.runs_failed, 0) as exact_runs_failed,
        cast(exact_runs.runs_failed as double precision)
        / nullif(exact_runs.runs_completed + exact_runs.runs_failed, 0) as exact_failure_rate,
        exact_runs.median_seconds as run_duration_median_seconds,
        exact_runs.p95_seconds as run_duration_p95_seconds
    from per_transfer
    left join observed_runs
        on
            observed_runs.team_id = per_transfer.team_id
            and observed_runs.transfer_id = per_transfer.transfer_id
    left join last_errors
        on
            last_errors.team_id = per_transfer.team_id
            and last_errors.transfer_id = per_transfer.transfer_id
    left join transfers
        on
            transfers.team_id = per_transfer.team_id
            and transfers.transfer_id = per_transfer.transfer_id
    left join exact_runs
        on
            exact_runs.team_id = per_transfer.team_id
            and exact_runs.transfer_id = per_transfer.transfer_id
)

select * from final

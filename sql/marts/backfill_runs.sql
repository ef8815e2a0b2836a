-- One row per transfer run of type Backfill, from the runs endpoint: exact times, durations,
-- rows and messages, with the backfill it belongs to (null: unattributed) and its attempt.
with runs as (
    select * from staging.int_backfill_runs
),

transfers as (
    select * from analytics.transfers
),

final as (
    select
        runs.team_id,
        runs.run_id,
        runs.transfer_id,
        transfers.transfer_name,
        runs.transfer_backfill_id,
        runs.transfer_backfill_id is not null as is_attributed,
        runs.data_date,
        runs.attempt,
        runs.status,
        runs.created_time,
        runs.ended_time,
        runs.duration_seconds,
        runs.total_rows,
        runs.message,
        runs.first_seen_at
    from runs
    left join transfers
        on
            transfers.team_id = runs.team_id
            and transfers.transfer_id = runs.transfer_id
)

select * from final

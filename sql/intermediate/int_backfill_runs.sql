-- One row per transfer run of type Backfill, attributed to its backfill: the same transfer, its
-- data_date within the backfill's range, created within the backfill's lifetime (from its
-- created_time to its end or removal; open while unfinished or unknown). Of two backfills that
-- qualify (a finished one whose range overlaps a newer one), the newer one. None: unattributed.
with runs as (
    select * from staging.stg_supermetrics__transfer_runs
),

backfills as (
    select
        team_id,
        transfer_id,
        transfer_backfill_id,
        range_start_date,
        range_end_date,
        created_time,
        coalesce(end_time, removed_time) as ended_time
    from staging.int_backfill_current_state
),

attributed as (
    select distinct on (runs.team_id, runs.run_id)
        runs.*,
        backfills.transfer_backfill_id
    from runs
    left join backfills
        on
            backfills.team_id = runs.team_id
            and backfills.transfer_id = runs.transfer_id
            and runs.data_date between backfills.range_start_date and backfills.range_end_date
            and runs.created_time >= backfills.created_time
            and (backfills.ended_time is null or runs.created_time <= backfills.ended_time)
    order by
        runs.team_id, runs.run_id, backfills.created_time desc nulls last, backfills.transfer_backfill_id desc
),

final as (
    select
        team_id,
        run_id,
        transfer_id,
        transfer_backfill_id,
        data_date,
        -- the n-th run of this backfill for this day: a retry makes a new run for the same day
        case
            when transfer_backfill_id is not null
                then cast(row_number() over (  -- bigint everywhere (Spark's row_number is an int)
                    partition by team_id, transfer_backfill_id, data_date order by created_time, run_id
                ) as bigint)
        end as attempt,
        status,
        created_time,
        ended_time,
        total_duration as duration_seconds,
        total_rows,
        message,
        first_seen_at
    from attributed
)

select * from final

-- One row per transfer run of type Backfill: its latest stored state (the sweep stores a run
-- when it is new or changed: created RUNNING, later ended), and when it was first stored.
with source as (
    select * from supermetrics.transfer_runs
),

final as (
    select distinct on (team_id, run_id)
        team_id,
        transfer_id,
        run_id,
        status,
        data_date,
        created_time,
        ended_time,
        total_duration,
        total_rows,
        message,
        min(observed_at) over run as first_seen_at,
        observed_at as updated_at
    from source
    window run as (partition by team_id, run_id)
    order by team_id, run_id, poll_id desc, observed_at desc
)

select * from final

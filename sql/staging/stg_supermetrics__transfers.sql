-- One row per transfer: its latest stored name, source and state (the sweep stores a transfer's
-- row when one of them changed), with when it was first and last stored.
with source as (
    select * from supermetrics.transfers
),

final as (
    select distinct on (team_id, transfer_id)
        team_id,
        transfer_id,
        display_name,
        data_source,
        status,
        state,
        schedule,
        min(observed_at) over transfer as first_seen_at,
        observed_at as updated_at
    from source
    window transfer as (partition by team_id, transfer_id)
    order by team_id, transfer_id, poll_id desc, observed_at desc
)

select * from final

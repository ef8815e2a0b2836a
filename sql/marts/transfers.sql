-- One row per transfer: its name and data source from the API's transfer list, and the
-- transfers that only backfills name (not in the list: deleted, or the sweep is off) without.
with listed as (
    select * from staging.stg_supermetrics__transfers
),

named_by_backfills as (
    select distinct team_id, transfer_id from staging.int_backfill_current_state
),

final as (
    select
        coalesce(listed.team_id, named_by_backfills.team_id) as team_id,
        coalesce(listed.transfer_id, named_by_backfills.transfer_id) as transfer_id,
        listed.display_name as transfer_name,
        listed.data_source,
        listed.status,
        listed.state,
        listed.schedule,
        listed.transfer_id is not null as is_in_transfer_list,
        listed.first_seen_at,
        listed.updated_at
    from listed
    full join named_by_backfills
        on
            named_by_backfills.team_id = listed.team_id
            and named_by_backfills.transfer_id = listed.transfer_id
)

select * from final

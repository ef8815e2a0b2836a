-- One row per distinct error a backfill ever reported: (transfer_run_date, error), with its
-- normalised pattern: quoted values, dates, ids and numbers masked, so that
-- "Account 123-456-7890 not found" and "Account 987-654-3210 not found" are one problem.
with versions as (
    select * from staging.int_backfill_versions_sequenced
    semi join staging.scope_backfills using (team_id, transfer_backfill_id)
),

reports as (
    select * from staging.stg_supermetrics__error_report
),

progress as (
    select * from analytics.backfill_progress
    semi join staging.scope_backfills using (team_id, transfer_backfill_id)
),

lookups as (
    select * from staging.stg_supermetrics__backfill_lookups
    semi join staging.scope_backfills using (team_id, transfer_backfill_id)
),

transfers as (
    select * from analytics.transfers
),

version_last_listed as (
    select
        team_id,
        transfer_backfill_id,
        version_poll_id,
        max(polled_at) as last_listed_at
    from progress
    group by team_id, transfer_backfill_id, version_poll_id
),

version_last_looked_up as (
    -- a lookup that found the state unchanged stores no version, but it saw that version's report
    select
        answered.team_id,
        answered.transfer_backfill_id,
        versions.poll_id as version_poll_id,
        max(answered.looked_up_at) as last_looked_up_at
    from (select * from lookups where outcome in ('final', 'incomplete')) as answered
    asof inner join versions
        on
            versions.team_id = answered.team_id
            and versions.transfer_backfill_id = answered.transfer_backfill_id
            and answered.poll_id >= versions.poll_id
    group by answered.team_id, answered.transfer_backfill_id, versions.poll_id
),

report_spans as (
    -- each stored error report, from the first to the last time a poll or lookup saw it
    select
        versions.team_id,
        versions.transfer_backfill_id,
        versions.error_report_version_id,
        any_value(versions.transfer_id) as transfer_id,
        min(versions.observed_at) as first_seen_at,
        max(
            greatest(
                versions.observed_at,
                version_last_listed.last_listed_at,
                version_last_looked_up.last_looked_up_at
            )
        ) as last_seen_at
    from versions
    left join version_last_listed
        on
            version_last_listed.team_id = versions.team_id
            and version_last_listed.transfer_backfill_id = versions.transfer_backfill_id
            and version_last_listed.version_poll_id = versions.poll_id
    left join version_last_looked_up
        on
            version_last_looked_up.team_id = versions.team_id
            and version_last_looked_up.transfer_backfill_id = versions.transfer_backfill_id
            and version_last_looked_up.version_poll_id = versions.poll_id
    group by versions.team_id, versions.transfer_backfill_id, versions.error_report_version_id
),

distinct_errors as (
    select
        report_spans.team_id,
        report_spans.transfer_backfill_id,
        any_value(report_spans.transfer_id) as transfer_id,
        reports.transfer_run_date,
        reports.error,
        min(report_spans.first_seen_at) as first_seen_at,
        max(report_spans.last_seen_at) as last_seen_at
    from report_spans
    inner join reports on reports.version_id = report_spans.error_report_version_id
    group by report_spans.team_id, report_spans.transfer_backfill_id, reports.transfer_run_date, reports.error
),

final as (
    select
        distinct_errors.*,
        regexp_replace(
            regexp_replace(
                regexp_replace(
                    regexp_replace(
                        regexp_replace(error, '''[^'']*''|"[^"]*"', '<value>', 'g'),
                        '\d{4}-\d{2}-\d{2}([T ][0-9:.]+Z?)?', '<date>', 'g'
                    ),
                    -- words mixing letters and digits: request ids, hex ids
                    '\b([A-Za-z_]+\w*\d|\d+[A-Za-z_])\w*\b', '<id>', 'g'
                ),
                '\d+(-\d+)+', '<id>', 'g'
            ),
            '\d+(\.\d+)?', '<n>', 'g'
        ) as error_pattern,
        transfers.transfer_name
    from distinct_errors
    left join transfers
        on
            transfers.team_id = distinct_errors.team_id
            and transfers.transfer_id = distinct_errors.transfer_id
)

select * from final

-- One row per distinct error a backfill ever reported: (transfer_run_date, error), with its
-- normalised pattern: quoted values, dates, ids and numbers masked, so that
-- "Account 123-456-7890 not found" and "Account 987-654-3210 not found" are one problem.
with versions as not materialized (  -- read three times: a scan each costs less than a copy
    {{ scoped_rows(staging.int_backfill_versions_sequenced, backfills, poll_id) }}
),

reports as (
    select * from staging.stg_supermetrics__error_report
),

progress as (
    {{ scoped_rows(analytics.backfill_progress, backfills, poll_id) }}
),

lookups as (
    {{ scoped_rows(staging.stg_supermetrics__backfill_lookups, backfills, poll_id) }}
),

transfers as (
    select * from analytics.transfers
),

-- each stored error report's versions (its error_report_poll_id names the version that stored
-- it): the last one is the latest that showed it
report_versions as (
    select
        team_id,
        transfer_backfill_id,
        error_report_poll_id,
        max(transfer_id) as transfer_id,  -- one per backfill
        min(observed_at) as first_seen_at,
        max(observed_at) as last_observed_at,
        max(poll_id) as last_version_poll_id
    from versions
    where error_report_poll_id is not null
    group by team_id, transfer_backfill_id, error_report_poll_id
),

-- the versions that stored a report, whose child rows are its entries
report_holders as (
    select team_id, transfer_backfill_id, poll_id, stored_report_version_id
    from versions
    where stored_report_version_id is not null
),

-- when each report's last version was last listed (a join with a few rows per report: grouping
-- every listed poll by its version would hash millions)
report_last_listed as (
    select
        report_versions.team_id,
        report_versions.transfer_backfill_id,
        report_versions.error_report_poll_id,
        max(progress.polled_at) as last_listed_at
    from report_versions
    inner join progress
        on
            progress.team_id = report_versions.team_id
            and progress.transfer_backfill_id = report_versions.transfer_backfill_id
            and progress.version_poll_id = report_versions.last_version_poll_id
    group by report_versions.team_id, report_versions.transfer_backfill_id, report_versions.error_report_poll_id
),

-- each answered lookup's latest version at or before it: the one whose poll is at or before the
-- lookup's and whose next version's is after it (an equality join on the backfill: a few lookups
-- each, where an as-of window would sort every version)
lookup_versions as (
    select
        versions.team_id,
        versions.transfer_backfill_id,
        versions.poll_id as version_poll_id,
        lookups.looked_up_at
    from lookups
    inner join versions
        on
            versions.team_id = lookups.team_id
            and versions.transfer_backfill_id = lookups.transfer_backfill_id
            and versions.poll_id <= lookups.poll_id
            and (versions.next_poll_id is null or versions.next_poll_id > lookups.poll_id)
    where lookups.outcome in ('final', 'incomplete')
),

version_last_looked_up as (
    -- a lookup that found the state unchanged stores no version, but it saw that version's report
    select
        team_id,
        transfer_backfill_id,
        version_poll_id,
        max(looked_up_at) as last_looked_up_at
    from lookup_versions
    group by team_id, transfer_backfill_id, version_poll_id
),

report_spans as (
    -- each stored error report, from the first to the last time a poll or lookup saw it: a later
    -- version was observed after every listing and lookup of an earlier one, so the report's last
    -- version tells when it was last seen
    select
        report_versions.team_id,
        report_versions.transfer_backfill_id,
        holders.stored_report_version_id as report_version_id,
        report_versions.transfer_id,
        report_versions.first_seen_at,
        greatest(
            report_versions.last_observed_at,
            report_last_listed.last_listed_at,
            version_last_looked_up.last_looked_up_at
        ) as last_seen_at
    from report_versions
    inner join report_holders as holders
        on
            holders.team_id = report_versions.team_id
            and holders.transfer_backfill_id = report_versions.transfer_backfill_id
            and holders.poll_id = report_versions.error_report_poll_id
    left join report_last_listed
        on
            report_last_listed.team_id = report_versions.team_id
            and report_last_listed.transfer_backfill_id = report_versions.transfer_backfill_id
            and report_last_listed.error_report_poll_id = report_versions.error_report_poll_id
    left join version_last_looked_up
        on
            version_last_looked_up.team_id = report_versions.team_id
            and version_last_looked_up.transfer_backfill_id = report_versions.transfer_backfill_id
            and version_last_looked_up.version_poll_id = report_versions.last_version_poll_id
),

distinct_errors as (
    select
        report_spans.team_id,
        report_spans.transfer_backfill_id,
        max(report_spans.transfer_id) as transfer_id,
        reports.transfer_run_date,
        reports.error,
        min(report_spans.first_seen_at) as first_seen_at,
        max(report_spans.last_seen_at) as last_seen_at
    from report_spans
    inner join reports on reports.version_id = report_spans.report_version_id
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
                        '[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9:.]+Z?)?', '<date>', 'g'
                    ),
                    -- words mixing letters and digits: request ids, hex ids. ASCII classes, and no
                    -- \b (a backspace to PostgreSQL): the greedy match spans the whole word anyway
                    '([A-Za-z_]+[A-Za-z0-9_]*[0-9]|[0-9]+[A-Za-z_])[A-Za-z0-9_]*', '<id>', 'g'
                ),
                '[0-9]+(-[0-9]+)+', '<id>', 'g'
            ),
            '[0-9]+([.][0-9]+)?', '<n>', 'g'
        ) as error_pattern,
        transfers.transfer_name
    from distinct_errors
    left join transfers
        on
            transfers.team_id = distinct_errors.team_id
            and transfers.transfer_id = distinct_errors.transfer_id
)

select * from final

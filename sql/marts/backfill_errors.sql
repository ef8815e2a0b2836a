-- One row per distinct error a backfill ever reported: (transfer_run_date, error), with its
-- normalised pattern: quoted values, dates, ids and numbers masked, so that
-- "Account 123-456-7890 not found" and "Account 987-654-3210 not found" are one problem.
with versions as (
    {{ scoped_rows(staging.int_backfill_versions_sequenced, backfills) }}
),

reports as (
    select * from staging.stg_supermetrics__error_report
),

progress as (
    {{ scoped_rows(analytics.backfill_progress, backfills) }}
),

lookups as (
    {{ scoped_rows(staging.stg_supermetrics__backfill_lookups, backfills) }}
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

-- each answered lookup's latest version at or before it: an as-of join, written as a running max
-- over both sides in poll order (DuckDB and PostgreSQL run it alike; a version sorts before a
-- lookup of the same poll)
lookup_timeline as (
    select team_id, transfer_backfill_id, poll_id, 0 as is_lookup, null as looked_up_at from versions
    union all
    select team_id, transfer_backfill_id, poll_id, 1 as is_lookup, looked_up_at
    from lookups
    where outcome in ('final', 'incomplete')
),

lookup_versions as (
    select
        team_id,
        transfer_backfill_id,
        is_lookup,
        looked_up_at,
        max(case when is_lookup = 0 then poll_id end) over (
            partition by team_id, transfer_backfill_id order by poll_id, is_lookup
            rows between unbounded preceding and current row
        ) as version_poll_id
    from lookup_timeline
),

version_last_looked_up as (
    -- a lookup that found the state unchanged stores no version, but it saw that version's report
    select
        team_id,
        transfer_backfill_id,
        version_poll_id,
        max(looked_up_at) as last_looked_up_at
    from lookup_versions
    where is_lookup = 1 and version_poll_id is not null
    group by team_id, transfer_backfill_id, version_poll_id
),

report_spans as (
    -- each stored error report, from the first to the last time a poll or lookup saw it
    select
        versions.team_id,
        versions.transfer_backfill_id,
        versions.error_report_version_id,
        max(versions.transfer_id) as transfer_id,  -- one per backfill
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
        max(report_spans.transfer_id) as transfer_id,
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
